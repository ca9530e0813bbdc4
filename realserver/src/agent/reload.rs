//! Reloads (`systemctl reload lb-agent`, SIGHUP): read the whole file again with the start-up
//! code, and switch to it only if all of it is good and the director takes it; otherwise
//! nothing changes. Never half-applied.
//!
//! `name` and `address` cannot change by reload: they are who the director knows, and moving
//! either means deregistering the old realserver and registering a new one, which a restart
//! does in the right order (and a new name needs a new certificate anyway). Everything else is
//! applied: services and weights by registering again from the same address (the director
//! replaces the lease, keeping the destination as it is until the new registration is
//! confirmed), the director URL and TLS files by a new channel, timers and retries at once.

use std::path::PathBuf;
use std::time::Duration;

use lb_shared::duration;
use lb_shared::notify;
use lb_shared::reload::{ReloadOutcome, ReloadRequest, Reloads};
use tracing::{error, info, warn};

use super::Agent;
use crate::backoff::Backoff;
use crate::config::{AgentConfig, ConfigError};
use crate::registry::{Registry, RegistryError};
use crate::rules::RuleBackend;

type Load = Box<dyn FnMut() -> Result<AgentConfig, ConfigError> + Send>;

/// Where reload requests come from, and how a reload reads the config.
pub struct ReloadSource {
    requests: Reloads,
    load: Load,
}

impl ReloadSource {
    /// Each request reads `path` with [`AgentConfig::load`], as at start.
    pub fn file(path: PathBuf, requests: Reloads) -> ReloadSource {
        ReloadSource::new(requests, move || AgentConfig::load(&path))
    }

    /// Each request calls `load` (tests adjust what the file cannot say, such as retries).
    pub fn new(
        requests: Reloads,
        load: impl FnMut() -> Result<AgentConfig, ConfigError> + Send + 'static,
    ) -> ReloadSource {
        ReloadSource {
            requests,
            load: Box::new(load),
        }
    }

    /// No reloads ever.
    pub fn none() -> ReloadSource {
        let (_, requests) = lb_shared::reload::channel();
        ReloadSource::new(requests, || {
            Err(ConfigError::Syntax {
                path: PathBuf::new(),
                message: "this agent has no config file to reload".into(),
            })
        })
    }

    pub(super) async fn next(&mut self) -> Option<ReloadRequest> {
        self.requests.recv().await
    }
}

impl<R: RuleBackend> Agent<R> {
    /// Answers `request`; returns when to talk to the director next, if that changed.
    pub(super) async fn reload(
        &mut self,
        request: ReloadRequest,
        source: &mut ReloadSource,
    ) -> Option<Duration> {
        notify::reloading();
        info!("reloading the config");
        let (outcome, wait) = match (source.load)() {
            Ok(new) => self.switch_to(new).await,
            Err(error) => {
                error!("{error}");
                (Err(error.to_string()), None)
            }
        };
        match &outcome {
            Ok(summary) => {
                info!(%summary, "reloaded");
                if self.lease.is_some() {
                    notify::status(&self.registered_status());
                }
            }
            Err(problems) => {
                warn!("reload refused; the running config stays in force");
                notify::status(&format!("reload refused: {}", problems.replace('\n', " ")));
            }
        }
        notify::ready();
        request.answer(outcome);
        wait
    }

    async fn switch_to(&mut self, new: AgentConfig) -> (ReloadOutcome, Option<Duration>) {
        let changed = match changes(&self.config, &new) {
            Ok(changed) if changed.is_empty() => return (Ok("nothing changed".into()), None),
            Ok(changed) => changed,
            Err(fixed) => {
                for problem in &fixed {
                    error!("{problem}");
                }
                return (Err(fixed.join("\n")), None);
            }
        };
        let registry = if new.director != self.config.director || new.tls != self.config.tls {
            match Registry::new(&new) {
                Ok(registry) => registry,
                Err(error) => {
                    error!("{error}");
                    return (Err(error.to_string()), None);
                }
            }
        } else {
            self.registry.clone()
        };
        // Ask the director before switching anything, so that a refusal (a service it does
        // not have) leaves everything as it was; a refused registration changes nothing there.
        let mut lease = None;
        if self.lease.is_some() && new.services != self.registered {
            match registry.register(&new).await {
                Ok(granted) => lease = Some(granted),
                Err(error @ RegistryError::Unreachable(_)) => {
                    warn!(%error, "the director is unreachable: registering with the new services once it answers");
                }
                Err(error) => {
                    error!(%error, "the director refused the new registration");
                    return (
                        Err(format!(
                            "the director refused the new registration: {error}"
                        )),
                        None,
                    );
                }
            }
        }
        if new.retry != self.config.retry {
            self.backoff = Backoff::new(new.retry);
        }
        self.check_period.send_if_modified(|period| {
            std::mem::replace(period, new.rule_check_interval) != new.rule_check_interval
        });
        self.registry = registry;
        self.config = new;
        let wait = match lease {
            Some(lease) => Some(self.take_lease(lease).await),
            // Not registered yet: try the new config at once.
            None if self.lease.is_none() => Some(Duration::ZERO),
            None => None,
        };
        (Ok(changed.join("; ")), wait)
    }
}

/// What a reload from `old` to `new` changes, one phrase each; or, when it touches a key that
/// only a restart may change, every such key as a config problem line.
pub(crate) fn changes(old: &AgentConfig, new: &AgentConfig) -> Result<Vec<String>, Vec<String>> {
    let restart = |key: &str, was: String, is: String| {
        format!("{key} = {is}: cannot change by reload (it is {was} now): restart lb-agent to change it")
    };
    let mut fixed = Vec::new();
    if old.name != new.name {
        fixed.push(restart(
            "name",
            format!("{:?}", old.name),
            format!("{:?}", new.name),
        ));
    }
    if old.address != new.address {
        fixed.push(restart(
            "address",
            format!("\"{}\"", old.address),
            format!("\"{}\"", new.address),
        ));
    }
    if old.metrics_listen != new.metrics_listen {
        let show = |a: Option<std::net::SocketAddr>| {
            format!("\"{}\"", a.map(|a| a.to_string()).unwrap_or_default())
        };
        fixed.push(restart(
            "metrics_listen",
            show(old.metrics_listen),
            show(new.metrics_listen),
        ));
    }
    if !fixed.is_empty() {
        return Err(fixed);
    }
    let mut changed = Vec::new();
    for service in &new.services {
        match old.weight_of(&service.name) {
            None => changed.push(format!("service {} added", service.name)),
            Some(weight) if weight != service.weight => changed.push(format!(
                "service {} weight {weight} -> {}",
                service.name, service.weight
            )),
            Some(_) => {}
        }
    }
    for service in &old.services {
        if new.weight_of(&service.name).is_none() {
            changed.push(format!("service {} removed", service.name));
        }
    }
    if old.director != new.director {
        changed.push(format!("director {} -> {}", old.director, new.director));
    }
    if old.tls != new.tls {
        changed.push("tls files changed: new connections use them".into());
    }
    let durations = [
        (
            "rule_check_interval",
            old.rule_check_interval,
            new.rule_check_interval,
        ),
        (
            "deregister_timeout",
            old.deregister_timeout,
            new.deregister_timeout,
        ),
    ];
    for (key, was, is) in durations {
        if was != is {
            changed.push(format!(
                "{key} {} -> {}",
                duration::format(was),
                duration::format(is)
            ));
        }
    }
    if old.retry != new.retry {
        changed.push("retry policy changed".into());
    }
    if old.iptables_timeout != new.iptables_timeout {
        changed.push("iptables_timeout changed: it applies from the next start".into());
    }
    Ok(changed)
}

#[cfg(test)]
mod tests;
