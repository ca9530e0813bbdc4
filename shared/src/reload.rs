//! Reload requests (`systemctl reload`, which sends SIGHUP): each one asks the daemon to read its
//! config again, validate all of it, and switch to it only if nothing is wrong.
//!
//! The daemons take a [`Reloads`] receiver instead of watching SIGHUP themselves, so tests ask
//! for a reload and await its outcome, while the binaries feed the same channel from the signal.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

/// How a reload ended: `Ok` with a summary of what changed, or `Err` with every problem found
/// (the running config stays in force then).
pub type ReloadOutcome = Result<String, String>;

/// One request to reload; `reply`, when present, receives the outcome.
#[derive(Debug)]
pub struct ReloadRequest {
    pub reply: Option<oneshot::Sender<ReloadOutcome>>,
}

impl ReloadRequest {
    /// Answers the requester, if it still waits.
    pub fn answer(self, outcome: ReloadOutcome) {
        if let Some(reply) = self.reply {
            let _ = reply.send(outcome);
        }
    }
}

/// The daemon's end: requests arrive here.
pub type Reloads = mpsc::Receiver<ReloadRequest>;

/// The requesting end, for tests and anything that embeds a daemon.
#[derive(Debug, Clone)]
pub struct ReloadHandle(mpsc::Sender<ReloadRequest>);

impl ReloadHandle {
    /// Asks for a reload and waits for its outcome; `Err` also when the daemon has stopped.
    pub async fn reload(&self) -> ReloadOutcome {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(ReloadRequest { reply: Some(tx) })
            .await
            .map_err(|_| "the daemon has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the daemon stopped before the reload finished".to_owned())?
    }
}

/// A channel of reload requests with nothing feeding it yet.
pub fn channel() -> (ReloadHandle, Reloads) {
    // A few queued requests are enough: reloads that pile up read the same file anyway.
    let (tx, rx) = mpsc::channel(4);
    (ReloadHandle(tx), rx)
}

/// Turns every SIGHUP into a reload request. Must be called inside a tokio runtime, as early as
/// possible: until the handler is installed, SIGHUP's default action ends the process.
pub fn on_sighup() -> std::io::Result<Reloads> {
    let mut hup = signal(SignalKind::hangup())?;
    let (handle, reloads) = channel();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "reload requested");
            // A full queue already holds a reload that will read the newest file.
            let _ = handle.0.try_send(ReloadRequest { reply: None });
        }
    });
    Ok(reloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_gets_the_daemons_answer() {
        let (handle, mut reloads) = channel();
        let daemon = tokio::spawn(async move {
            let request = reloads.recv().await.expect("a request");
            request.answer(Err("service[0].port: 0 is not a port".into()));
        });
        assert_eq!(
            handle.reload().await,
            Err("service[0].port: 0 is not a port".into())
        );
        daemon.await.expect("daemon task");
        assert_eq!(
            handle.reload().await,
            Err("the daemon has stopped".into()),
            "a stopped daemon is an error, not a hang"
        );
    }
}
