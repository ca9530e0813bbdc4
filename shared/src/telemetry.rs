//! Logging setup for the daemons: lines on stderr (journald keeps them under systemd), filtered
//! by `LB_LOG` (same syntax as `RUST_LOG`), `info` by default, in one of two formats chosen by
//! `--log-format` or `LB_LOG_FORMAT`:
//! - `text` (the default), for people and the journal: no targets, since the journal names the
//!   unit; audit lines stay recognisable because their message begins with "audit:";
//! - `json`, for a log pipeline: one object per line with `timestamp`, `level`, `target`
//!   ("audit" for audit lines), the event's `fields`, the current `span` and the list of
//!   `spans` it is in, each with its fields (`reconcile`, `health`, `reload`, ...).

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal and journald.
    #[default]
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// The daemons' logging flags: `#[command(flatten)] log: LogArgs` in their clap arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Format of the log lines on stderr: text (for people and the journal) or json (one
    /// object per line with the span fields, for a log pipeline).
    #[arg(
        long = "log-format",
        env = "LB_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber in the chosen format (see [`init_as`]).
    pub fn init(&self) {
        init_as(self.log_format);
    }
}

/// The format the process logs in, once set up; [`fatal`] follows it.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber with human-readable lines.
pub fn init() {
    init_as(LogFormat::Text);
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), so
/// tests that start several daemons in one process can call it freely.
pub fn init_as(format: LogFormat) {
    let filter = EnvFilter::try_from_env("LB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes are noise in the journal and in the lab's console capture.
    let ansi = std::io::stderr().is_terminal();
    if subscriber(format, filter, std::io::stderr, ansi)
        .try_init()
        .is_ok()
    {
        let _ = FORMAT.set(format);
    }
}

/// Reports an error that ends the program before it runs (an unusable config): in text as the
/// plain line `PROGRAM: ERROR` a person at a terminal reads, in json as one error event so a
/// pipeline sees every line as JSON.
pub fn fatal(program: &str, error: &dyn Display) {
    match FORMAT.get() {
        Some(LogFormat::Json) => tracing::error!(target: "startup", program, "{error}"),
        _ => eprintln!("{program}: {error}"),
    }
}

/// The subscriber for `format`, writing to `writer` (stderr in the daemons, a buffer in tests).
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).with_target(false).finish()),
        // Fields stay nested under "fields": flattened, an audit line's `target` field (whom
        // the action was on) would collide with the event's target "audit".
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use clap::Parser;

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// What a director logs inside its spans: a pass's line and an audit line.
    fn log_in(format: LogFormat) -> String {
        let buffer = Buffer::default();
        let subscriber = subscriber(format, EnvFilter::new("info"), buffer.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            let _reconciler = tracing::info_span!("reconciler").entered();
            let _pass = tracing::info_span!("reconcile", pass = 7).entered();
            tracing::info!(op = "add 10.0.0.11", "applied");
            tracing::info!(target: "audit", caller = "ops", action = "drain", target = "llc5",
                result = "ok", "audit: admin action");
        });
        let text = buffer.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn json_is_one_object_per_line_with_the_spans_and_the_audit_target() {
        let out = log_in(LogFormat::Json);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        let applied = &lines[0];
        assert_eq!(applied["level"], "INFO");
        assert_eq!(applied["fields"]["message"], "applied");
        assert_eq!(applied["fields"]["op"], "add 10.0.0.11");
        assert_eq!(applied["span"]["name"], "reconcile");
        assert_eq!(applied["span"]["pass"], 7);
        let spans: Vec<_> = applied["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(spans, ["reconciler", "reconcile"]);
        let audit = &lines[1];
        assert_eq!(audit["target"], "audit");
        // Whom the action was on stays a field of its own, beside the event's target.
        assert_eq!(audit["fields"]["target"], "llc5");
        assert_eq!(audit["fields"]["action"], "drain");
    }

    #[test]
    fn text_hides_targets_but_audit_lines_say_audit() {
        let out = log_in(LogFormat::Text);
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].contains("reconciler:reconcile{pass=7}: applied"),
            "{out}"
        );
        assert!(lines[1].contains(" audit: admin action"), "{out}");
        assert!(lines[1].contains("target=\"llc5\""), "{out}");
    }

    #[derive(Debug, Parser)]
    struct Daemon {
        #[command(flatten)]
        log: LogArgs,
    }

    #[test]
    fn the_flag_takes_text_or_json_and_names_both_when_wrong() {
        let parse = |args: &[&str]| Daemon::try_parse_from(args).map(|d| d.log.log_format);
        // The environment variable is the binaries' tests' part.
        if std::env::var_os("LB_LOG_FORMAT").is_none() {
            assert_eq!(parse(&["d"]).unwrap(), LogFormat::Text);
        }
        assert_eq!(
            parse(&["d", "--log-format", "json"]).unwrap(),
            LogFormat::Json
        );
        let error = parse(&["d", "--log-format", "xml"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_string();
        assert!(message.contains("invalid value 'xml'"), "{message}");
        assert!(
            message.contains("[possible values: text, json]"),
            "{message}"
        );
    }
}
