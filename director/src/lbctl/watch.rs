//! `lbctl status --watch`: the status table again every interval, like `watch lbctl status`
//! but with one connection, a director that goes away shown in place of the table (and the
//! watch carrying on until it is back), and Ctrl-C as the normal way out (exit 0).

use std::io::Write;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use lb_proto as pb;

use super::{answer, connect, render, Cli, LbctlError, Output};

/// Clears a terminal and puts the cursor top left (what `clear` prints, less the scrollback).
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The shortest interval `--interval` takes: the status call costs the director a table walk.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `--interval`: seconds as a plain number ("5", as watch -n takes it) or a duration ("500ms").
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = match text.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => lb_shared::duration::parse(text)?,
    };
    if interval < MIN_INTERVAL {
        return Err(format!(
            "{text:?} is too short: the interval is at least 100ms"
        ));
    }
    Ok(interval)
}

pub(super) async fn watch_status(
    cli: &Cli,
    json: bool,
    interval: Duration,
    output: &mut Output<impl Write>,
) -> Result<(), LbctlError> {
    let target = cli.target();
    let mut interrupts = super::interrupts()?;
    let mut ticks = tokio::time::interval(interval);
    // A slow director delays the next refresh instead of bunching the missed ones up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut admin = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = interrupts.recv() => return Ok(()),
        }
        let answer = tokio::select! {
            answer = status(cli, &mut admin) => answer,
            _ = interrupts.recv() => return Ok(()),
        };
        let frame = match (answer, json) {
            (Ok(status), true) => format!("{}\n", render::render_json_line(&status)),
            (Ok(status), false) => render::render_table(&status),
            // Unreachable now says nothing of later: show it and try again next time.
            (Err(error), _) if error.is_transient() => {
                if json {
                    // Stdout stays one JSON document per line for whatever reads it.
                    eprintln!("lbctl: {error}");
                    continue;
                }
                format!("lbctl: {error}\n")
            }
            (Err(error), _) => return Err(error),
        };
        if json {
            write!(output.out, "{frame}")?;
        } else {
            let header = format!(
                "Every {}: lbctl status ({target})    {}\n\n",
                lb_shared::duration::format(interval),
                utc_now()
            );
            if output.terminal {
                write!(output.out, "{CLEAR}{header}{frame}")?;
            } else {
                // Each refresh after a blank line, under its own header.
                writeln!(output.out, "{header}{frame}")?;
            }
        }
        output.out.flush()?;
    }
}

/// One status answer, connecting first when there is no connection yet (or the last one
/// failed to be made). tonic's channel reconnects on its own once it exists.
async fn status(
    cli: &Cli,
    admin: &mut Option<pb::admin_client::AdminClient<tonic::transport::Channel>>,
) -> Result<pb::StatusResponse, LbctlError> {
    let client = match admin {
        Some(client) => client,
        None => admin.insert(pb::admin_client::AdminClient::new(connect(cli).await?)),
    };
    answer(
        cli,
        &cli.target(),
        client.status(pb::StatusRequest {}).await,
    )
}

/// "2026-12-02 01:55:00 UTC": the time of a refresh, so a frozen screen is noticed.
fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_takes_seconds_or_a_duration_and_refuses_too_short() {
        assert_eq!(parse_interval("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("10ms").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
