//! Graceful shutdown: the first SIGTERM or SIGINT cancels a shared token that every long-running
//! task watches; a second one exits the process at once, for the operator whose graceful stop
//! hangs (a director that does not answer a deregistration, say).

use tokio::signal::unix::{signal, SignalKind};
pub use tokio_util::sync::CancellationToken;

/// Exit code of a forced stop (the second signal), as a shell reports a SIGINT death.
pub const EXIT_FORCED: i32 = 130;

/// Starts watching SIGTERM and SIGINT and returns the token the first one cancels.
///
/// Must be called inside a tokio runtime. Fails only if signal handlers cannot be installed.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = first,
            "stopping gracefully; a second signal stops at once"
        );
        cancel.cancel();
        let second = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(signal = second, "second signal: stopping at once");
        std::process::exit(EXIT_FORCED);
    });
    Ok(token)
}
