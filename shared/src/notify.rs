//! systemd notification (`Type=notify`): READY, STATUS and watchdog pings. Every call is a no-op
//! when the process was not started by systemd (`NOTIFY_SOCKET` unset), so the daemons run the same
//! way by hand, in tests and in the lab.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Tells systemd that start-up is complete.
pub fn ready() {
    send(&[sd_notify::NotifyState::Ready]);
}

/// Sets the one-line status `systemctl status` shows.
pub fn status(text: &str) {
    send(&[sd_notify::NotifyState::Status(text)]);
}

/// Tells systemd a reload began; [`ready`] ends it. systemd wants the monotonic clock with it
/// (`Type=notify-reload` refuses a RELOADING=1 without MONOTONIC_USEC).
pub fn reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[sd_notify::NotifyState::Reloading, now]),
        Err(_) => send(&[sd_notify::NotifyState::Reloading]),
    }
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

fn send(state: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(error) = sd_notify::notify(state) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// Pings the systemd watchdog at half its interval while `alive` is not cancelled. Does nothing
/// when `WATCHDOG_USEC` is unset. The pings come from the runtime, so a wedged runtime stops them
/// and systemd restarts the daemon.
pub fn spawn_watchdog(alive: CancellationToken) {
    spawn_watchdog_while(alive, || true);
}

/// Like [`spawn_watchdog`], but each ping is sent only while `progressing()` says the daemon's
/// essential work moves (a reconciler whose pass is not stuck): systemd restarts it otherwise.
pub fn spawn_watchdog_while(
    alive: CancellationToken,
    progressing: impl Fn() -> bool + Send + 'static,
) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = alive.cancelled() => return,
                _ = tick.tick() => {
                    if progressing() {
                        send(&[sd_notify::NotifyState::Watchdog]);
                    } else {
                        tracing::error!("no progress: withholding the watchdog ping so that systemd restarts the daemon");
                    }
                }
            }
        }
    });
}

fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}
