//! Logging setup for the daemons: human-readable lines on stderr (journald keeps them under
//! systemd), filtered by `LB_LOG` (same syntax as `RUST_LOG`), `info` by default.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), so tests
/// that start several daemons in one process can call it freely.
pub fn init() {
    let filter = EnvFilter::try_from_env("LB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are noise in the journal and in the lab's console capture.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
