//! Reloads (`systemctl reload lb-director`, SIGHUP): the file is read and validated completely
//! with the same code as at start; only a wholly valid config replaces the running one, and
//! only its differences reach the kernel (the next pass plans them). A refused reload logs
//! every problem, leaves everything running as it was, and says so in the sd_notify status.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{error, info};

use lb_shared::notify;
use lb_shared::reload::{ReloadOutcome, Reloads};

use crate::config::DirectorConfig;
use crate::director::Director;
use crate::tls::TlsAcceptor;

/// Answers reload requests until the channel closes (the daemon stops).
pub(super) async fn serve(
    director: Arc<Director>,
    tls: Option<Arc<TlsAcceptor>>,
    path: PathBuf,
    mut reloads: Reloads,
    addr: String,
) {
    while let Some(request) = reloads.recv().await {
        notify::reloading();
        let outcome = reload(&director, tls.as_deref(), &path).await;
        match &outcome {
            Ok(summary) => {
                info!(path = %path.display(), %summary, "reloaded");
                notify::status(&super::serving_status(&director.config(), &addr));
            }
            Err(problems) => {
                error!(path = %path.display(), "reload refused, the running configuration stays in force: {problems}");
                notify::status(&format!(
                    "reload refused, running the previous configuration: {problems}"
                ));
            }
        }
        notify::ready();
        request.answer(outcome);
    }
    // No more requests can come: the daemon runs on until its stop.
    std::future::pending::<()>().await
}

async fn reload(
    director: &Director,
    tls: Option<&TlsAcceptor>,
    path: &std::path::Path,
) -> ReloadOutcome {
    let new = DirectorConfig::load(path).map_err(|e| e.to_string())?;
    let old = director.config();
    fixed_keys(&old, &new)?;
    let summary = summary(&old, &new);
    // The last step that can fail, before anything else changes: certificate rotation.
    if let (Some(acceptor), Some(files)) = (tls, &new.tls) {
        if old.tls.as_ref() != Some(files) {
            acceptor.replace(files).map_err(|e| e.to_string())?;
        }
    }
    director.replace_config(Arc::new(new));
    let outcome = director.pass().await;
    match outcome.result {
        Ok(report) if report.failed == 0 => Ok(summary),
        Ok(report) => Ok(format!(
            "{summary}; {} kernel operation(s) refused, retried at every pass",
            report.failed
        )),
        Err(e) => Ok(format!("{summary}; the kernel is not updated yet: {e}")),
    }
}

/// Keys a running director cannot change: its sockets and its state directory are bound
/// once at start. A reload that changes one is refused as a whole, naming them.
fn fixed_keys(old: &DirectorConfig, new: &DirectorConfig) -> Result<(), String> {
    let mut changed = Vec::new();
    if old.listen != new.listen {
        changed.push(format!("listen (\"{}\" -> \"{}\")", old.listen, new.listen));
    }
    if old.metrics_listen != new.metrics_listen {
        let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        changed.push(format!(
            "metrics_listen (\"{}\" -> \"{}\")",
            show(old.metrics_listen),
            show(new.metrics_listen)
        ));
    }
    if old.state_dir != new.state_dir {
        changed.push(format!(
            "state_dir ({} -> {})",
            old.state_dir.display(),
            new.state_dir.display()
        ));
    }
    if old.admin_socket != new.admin_socket {
        changed.push("admin_socket".to_owned());
    }
    if old.tls.is_some() != new.tls.is_some() {
        changed.push("[tls] (turning TLS on or off)".to_owned());
    }
    if old.ha.is_some() != new.ha.is_some() {
        // Who owns the VIPs would change under a running director: adding [ha] leaves the
        // VIPs it put up beside keepalived's, removing it puts them on a standby too. A
        // restart in the order of deploy/ha (keepalived stopped first) is the safe way.
        changed.push("[ha] (turning HA mode on or off)".to_owned());
    } else if old.ecmp != new.ecmp {
        // Who owns the VIPs and whether the sync daemons run would change under it.
        changed.push("[ha] mode".to_owned());
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot change on reload: restart lb-director to apply",
            changed.join(", ")
        ))
    }
}

/// "services added llc-sftp; removed old-ssh (retiring); changed llc-ssh; lease_ttl 6s -> 4s".
fn summary(old: &DirectorConfig, new: &DirectorConfig) -> String {
    let mut parts = Vec::new();
    let names =
        |c: &DirectorConfig| -> Vec<String> { c.services.iter().map(|s| s.name.clone()).collect() };
    let (old_names, new_names) = (names(old), names(new));
    let added: Vec<_> = new_names
        .iter()
        .filter(|n| !old_names.contains(n))
        .cloned()
        .collect();
    let removed: Vec<_> = old_names
        .iter()
        .filter(|n| !new_names.contains(n))
        .cloned()
        .collect();
    let changed: Vec<_> = new
        .services
        .iter()
        .filter(|s| old.service(&s.name).is_some_and(|o| o != *s))
        .map(|s| s.name.clone())
        .collect();
    if !added.is_empty() {
        parts.push(format!("services added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("services retiring: {}", removed.join(", ")));
    }
    if !changed.is_empty() {
        parts.push(format!("services changed: {}", changed.join(", ")));
    }
    if old.lease_ttl != new.lease_ttl {
        parts.push(format!(
            "lease_ttl {:?} -> {:?}",
            old.lease_ttl, new.lease_ttl
        ));
    }
    if old.resync_interval != new.resync_interval {
        parts.push(format!(
            "resync_interval {:?} -> {:?}",
            old.resync_interval, new.resync_interval
        ));
    }
    if old.tls != new.tls {
        parts.push("TLS files replaced: new connections use them".to_owned());
    }
    if let (Some(was), Some(is)) = (&old.ha, &new.ha) {
        if was != is {
            parts.push(format!(
                "[ha] sync daemons replaced: sync_interface {} -> {}, sync_id {} -> {}",
                was.sync_interface, is.sync_interface, was.sync_id, is.sync_id
            ));
        }
    }
    if old.peers != new.peers || old.name != new.name {
        let names: Vec<&str> = new.peers.iter().map(|p| p.name.as_str()).collect();
        parts.push(format!(
            "peers now {} (as {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
            new.name
        ));
    }
    if old.realservers != new.realservers || old.admins != new.admins {
        parts.push("access (realservers, admins) updated".to_owned());
    }
    if parts.is_empty() {
        "no change".to_owned()
    } else {
        parts.join("; ")
    }
}
