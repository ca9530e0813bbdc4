//! `lbctl drain NAME --wait`: follows the director's drain watch until the realserver has no
//! active connection, and shows how it goes: a live bar on a terminal, plain lines otherwise
//! (a log file or a CI job wants lines it can read afterwards, not redrawn ones).

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use lb_proto as pb;

use super::{clock, LbctlError, Output};

/// Without a change, a plain line still comes this often, so a log shows the wait is alive.
const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// Follows `stream` (the director's WatchDrain answer) until `name` has no active connection.
pub(super) async fn wait_drained(
    mut stream: tonic::Streaming<pb::DrainProgress>,
    name: &str,
    timeout: Duration,
    output: &mut Output<impl Write>,
) -> Result<(), LbctlError> {
    let mut interrupts = super::interrupts()?;
    let started = Instant::now();
    let deadline = started + timeout;
    let mut report = if output.terminal {
        Report::bar(name, timeout)
    } else {
        Report::lines(name)
    };
    let mut active = None;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, stream.next()) => next,
            _ = interrupts.recv() => {
                report.stop();
                return Err(LbctlError::Interrupted(format!(
                    "stopped waiting; {name} stays drained ({} active connection(s) left)",
                    active.unwrap_or(0)
                )));
            }
        };
        let progress = match next {
            Err(_elapsed) => {
                report.stop();
                return Err(LbctlError::DrainTimeout {
                    name: name.to_owned(),
                    active: active.unwrap_or(0),
                    after: timeout,
                });
            }
            // The director ends the stream after the report of 0, or when it goes away.
            Ok(None) => {
                report.stop();
                return Err(LbctlError::WatchEnded {
                    name: name.to_owned(),
                    active: active.unwrap_or(0),
                });
            }
            Ok(Some(progress)) => progress.inspect_err(|_| report.stop())?,
        };
        active = Some(progress.active_conn);
        report.show(&progress, started.elapsed(), &mut output.out)?;
        if progress.active_conn == 0 {
            break;
        }
    }
    report.stop();
    writeln!(
        output.out,
        "{name} is drained: no active connections (after {})",
        clock(started.elapsed())
    )?;
    Ok(())
}

enum Report {
    Bar {
        bar: ProgressBar,
        /// The most sessions seen at once: the bar's length.
        most: u32,
    },
    Lines {
        name: String,
        last: Option<pb::DrainProgress>,
        next_line: Instant,
    },
}

impl Report {
    fn bar(name: &str, timeout: Duration) -> Report {
        let style = ProgressStyle::with_template(
            // wide_bar takes what the terminal has left, so the line fits 80 columns.
            "{spinner} {prefix}: {msg} [{wide_bar}] {elapsed_precise} (timeout in {left})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key(
            "left",
            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&clock(timeout.saturating_sub(state.elapsed())));
            },
        );
        // Length 1, position 0: an empty bar until the first count gives the real length.
        let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stdout())
            .with_style(style)
            .with_prefix(name.to_owned())
            .with_message("waiting for the first count");
        // Redrawn every second, so elapsed and the spinner move while the counts do not.
        bar.enable_steady_tick(Duration::from_secs(1));
        Report::Bar { bar, most: 0 }
    }

    fn lines(name: &str) -> Report {
        Report::Lines {
            name: name.to_owned(),
            last: None,
            next_line: Instant::now(),
        }
    }

    fn show(
        &mut self,
        progress: &pb::DrainProgress,
        elapsed: Duration,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        match self {
            Report::Bar { bar, most } => {
                *most = (*most).max(progress.active_conn);
                bar.set_length(u64::from((*most).max(1)));
                bar.set_position(u64::from(*most - progress.active_conn));
                bar.set_message(format!(
                    "{} of {} sessions left, {} inactive",
                    progress.active_conn, most, progress.inact_conn
                ));
                Ok(())
            }
            Report::Lines {
                name,
                last,
                next_line,
            } => {
                let now = Instant::now();
                if last.as_ref() == Some(progress) && now < *next_line {
                    return Ok(());
                }
                writeln!(
                    out,
                    "{name}: ActiveConn {} InActConn {} ({} elapsed)",
                    progress.active_conn,
                    progress.inact_conn,
                    clock(elapsed)
                )?;
                out.flush()?;
                *last = Some(*progress);
                *next_line = now + PLAIN_EVERY;
                Ok(())
            }
        }
    }

    /// Takes the bar off the screen before the last line or an error is printed.
    fn stop(&self) {
        if let Report::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}
