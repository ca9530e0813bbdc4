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
//!
//! A changed `directors` list starts a session for each new director and ends the session of
//! each removed one, which deregisters from it; the others keep their leases.

use std::path::PathBuf;
use std::sync::Arc;

use lb_shared::duration;
use lb_shared::notify;
use lb_shared::reload::{ReloadOutcome, ReloadRequest, Reloads};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::director::{Ask, Command, Switch};
use super::Agent;
use crate::config::{AgentConfig, ConfigError, DirectorUrl};
use crate::registry::{Lease, Registry, RegistryError};
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
    /// Answers `request`.
    pub(super) async fn reload(&mut self, request: ReloadRequest, source: &mut ReloadSource) {
        notify::reloading();
        info!("reloading the config");
        let outcome = match (source.load)() {
            Ok(new) => self.switch_to(new).await,
            Err(error) => {
                error!("{error}");
                Err(error.to_string())
            }
        };
        match &outcome {
            Ok(summary) => {
                info!(%summary, "reloaded");
                self.board.show();
            }
            Err(problems) => {
                warn!("reload refused; the running config stays in force");
                notify::status(&format!("reload refused: {}", problems.replace('\n', " ")));
            }
        }
        notify::ready();
        request.answer(outcome);
    }

    async fn switch_to(&mut self, new: AgentConfig) -> ReloadOutcome {
        let changed = match changes(&self.config, &new) {
            Ok(changed) if changed.is_empty() => return Ok("nothing changed".into()),
            Ok(changed) => changed,
            Err(fixed) => {
                for problem in &fixed {
                    error!("{problem}");
                }
                return Err(fixed.join("\n"));
            }
        };
        let running: Vec<DirectorUrl> = self.sessions.iter().map(|s| s.url.clone()).collect();
        let serving = sessions_for(&running, &new.directors);
        let mut registries = Vec::new();
        for (url, session) in new.directors.iter().zip(&serving) {
            let kept = session.map(|s| &self.sessions[s]);
            match kept {
                Some(kept) if kept.url == *url && new.tls == self.config.tls => {
                    registries.push(kept.registry.clone());
                }
                _ => match Registry::new(url, new.tls.as_ref()) {
                    Ok(registry) => registries.push(registry),
                    Err(error) => {
                        error!("{error}");
                        return Err(error.to_string());
                    }
                },
            }
        }
        let new = Arc::new(new);
        let mut leases = match self.ask_first(&new, &serving, &registries).await {
            Ok(leases) => leases,
            Err(refused) => return Err(refused),
        };
        self.check_period.send_if_modified(|period| {
            std::mem::replace(period, new.rule_check_interval) != new.rule_check_interval
        });
        self.config = Arc::clone(&new);
        let mut old = std::mem::take(&mut self.sessions)
            .into_iter()
            .map(Some)
            .collect::<Vec<_>>();
        let mut switched = Vec::new();
        for (i, (url, registry)) in new.directors.iter().zip(registries).enumerate() {
            match serving[i].and_then(|s| old[s].take()) {
                Some(mut session) => {
                    let (done, switch) = oneshot::channel();
                    let _ = session.commands.send(Command::Switch(Box::new(Switch {
                        config: Arc::clone(&new),
                        url: url.clone(),
                        registry: registry.clone(),
                        lease: leases[i].take(),
                        done,
                    })));
                    switched.push(switch);
                    session.url = url.clone();
                    session.registry = registry;
                    self.sessions.push(session);
                }
                None => self.start_session(url.clone(), registry),
            }
        }
        for gone in old.into_iter().flatten() {
            info!(director = %gone.url, "director removed: deregistering");
            self.board.leave(gone.id);
            gone.removed.cancel();
            gone.end.cancel();
            self.leaving.push(gone.task);
        }
        // Each session is bounded in what it is doing (one director call at most) before it
        // takes the switch; they switch side by side.
        for switch in switched {
            let _ = switch.await;
        }
        Ok(changed.join("; "))
    }

    /// Registers the new services with every kept director whose session holds a lease, side
    /// by side, before anything switches, so that a refusal (a service a director does not
    /// have) leaves everything as it was. An unreachable director gets them once it answers.
    /// Each session registers itself, between two of its own calls, and holds its heartbeats
    /// until the switch: done beside a running session, a heartbeat of the lease the new
    /// registration had just replaced was refused, and the session registered its old config
    /// over the reload's lease.
    async fn ask_first(
        &self,
        new: &Arc<AgentConfig>,
        serving: &[Option<usize>],
        registries: &[Registry],
    ) -> Result<Vec<Option<Lease>>, String> {
        let mut leases: Vec<Option<Lease>> = serving.iter().map(|_| None).collect();
        if new.services == self.config.services {
            return Ok(leases);
        }
        let mut asks = tokio::task::JoinSet::new();
        for (i, (session, registry)) in serving.iter().zip(registries).enumerate() {
            let Some(session) = session else { continue };
            let (answer, answered) = oneshot::channel();
            let ask = Ask {
                config: Arc::clone(new),
                registry: registry.clone(),
                answer,
            };
            if self.sessions[*session]
                .commands
                .send(Command::Ask(Box::new(ask)))
                .is_ok()
            {
                asks.spawn(async move { (i, answered.await) });
            }
        }
        let mut refusals = Vec::new();
        while let Some(answer) = asks.join_next().await {
            // A session that ended without answering asked nothing.
            let Ok((i, Ok(answer))) = answer else {
                continue;
            };
            let url = &new.directors[i];
            match answer {
                Ok(granted) => leases[i] = granted,
                Err(error @ RegistryError::Unreachable(_)) => {
                    warn!(director = %url, %error, "the director is unreachable: registering with the new services once it answers");
                }
                Err(error) => {
                    error!(director = %url, %error, "the director refused the new registration");
                    refusals.push((i, error));
                }
            }
        }
        if refusals.is_empty() {
            return Ok(leases);
        }
        // The directors that took the new services hold a lease for what will not run: they
        // get the running config again at once; the others go on as they were.
        for (i, lease) in leases.iter().enumerate() {
            if let Some(session) = serving[i] {
                let next = match lease {
                    Some(_) => Command::Register,
                    None => Command::Resume,
                };
                let _ = self.sessions[session].commands.send(next);
            }
        }
        refusals.sort_by_key(|(i, _)| *i);
        let each: Vec<String> = refusals
            .iter()
            .map(|(i, error)| {
                let refused = format!("the director refused the new registration: {error}");
                if new.directors.len() == 1 {
                    refused
                } else {
                    format!("{}: {refused}", new.directors[*i].authority())
                }
            })
            .collect();
        Err(each.join("\n"))
    }
}

/// For each director of the new config, the running session (an index into `running`) that
/// serves it: the one with the same URL. A single director edited in place stays the same
/// session, as before there could be several: a new spelling of the same director (a name for
/// its address) must not deregister the realserver from it.
fn sessions_for(running: &[DirectorUrl], new: &[DirectorUrl]) -> Vec<Option<usize>> {
    if let ([_], [_]) = (running, new) {
        return vec![Some(0)];
    }
    new.iter()
        .map(|url| running.iter().position(|r| r == url))
        .collect()
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
    match (old.directors.as_slice(), new.directors.as_slice()) {
        ([was], [is]) if was != is => changed.push(format!("director {was} -> {is}")),
        ([_], [_]) => {}
        (was, is) => {
            for url in is.iter().filter(|url| !was.contains(url)) {
                changed.push(format!("director {url} added"));
            }
            for url in was.iter().filter(|url| !is.contains(url)) {
                changed.push(format!("director {url} removed"));
            }
        }
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
