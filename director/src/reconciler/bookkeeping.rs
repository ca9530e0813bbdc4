//! The reconciler's bookkeeping around a pass: which services this director owns and which it
//! is retiring, destinations adopted from the kernel at start, realservers that are gone, and
//! what the host should hold. Pure functions of their arguments, so each is tested alone.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::info;

use lb_shared::domain::Forward;

use crate::config::{DirectorConfig, ServiceConfig};
use crate::host::ServiceVip;
use crate::registry::{LeaseState, Registry};
use crate::state::{OwnedService, RetiringService, State};
use crate::table::ObservedTable;

/// Seconds since the Unix epoch: retirement deadlines must hold across restarts.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn owned_service(s: &ServiceConfig) -> OwnedService {
    let (first, more) = s
        .vips()
        .split_first()
        .map_or((None, &[][..]), |(f, m)| (Some(*f), m));
    OwnedService {
        name: s.name.clone(),
        protocol: s.protocol().map_or("fwmark".to_owned(), |p| p.to_string()),
        // A service always has a VIP: the config refuses a fwmark service without one.
        vip: first.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        port: s.port(),
        interface: s.interface.clone(),
        fwmark: s.fwmark(),
        more_vips: more.to_vec(),
    }
}

/// Services the state says this director owned and the configuration no longer has begin to
/// retire (a reload or a restart removed them, or moved their VIP, port or protocol); a
/// retiring service configured again is simply owned again. Idempotent.
pub fn track_retiring(state: &mut State, config: &DirectorConfig, now: u64) {
    let configured: BTreeSet<_> = config.services.iter().map(|s| s.key()).collect();
    for owned in &state.owned {
        let Some(key) = owned.key() else { continue };
        if configured.contains(&key) || state.retiring.iter().any(|r| r.service.key() == Some(key))
        {
            continue;
        }
        info!(service = %owned.name, %key, retire_timeout = ?config.retire_timeout,
            "service left the configuration: retiring (weight 0 until its connections end)");
        state.retiring.insert(RetiringService {
            service: owned.clone(),
            since: now,
        });
    }
    state
        .retiring
        .retain(|r| r.service.key().is_some_and(|k| !configured.contains(&k)));
    state.owned = config.services.iter().map(owned_service).collect();
}

/// Whether a retiring service may go now: no connections left, or its time is up.
pub fn retire_due(retiring: &RetiringService, idle: bool, timeout: Duration, now: u64) -> bool {
    idle || now >= retiring.since.saturating_add(timeout.as_secs())
}

/// When the next retiring service runs out of time, so the reconciler wakes for it. Deadlines
/// already past are not counted: the pass at that moment deleted the service, or the kernel
/// refused and the periodic resync retries (waking for it again at once would spin).
pub fn next_retire_deadline(state: &State, config: &DirectorConfig) -> Option<Instant> {
    let now = unix_now();
    let deadline = state
        .retiring
        .iter()
        .map(|r| r.since.saturating_add(config.retire_timeout.as_secs()))
        .filter(|d| *d >= now)
        .min()?;
    // Deadlines are kept in whole seconds: wake just after this one.
    Some(Instant::now() + Duration::from_secs(deadline - now) + Duration::from_millis(100))
}

/// What the host should hold: each configured service's VIP, and the VIPs of services still
/// retiring (their sessions go on through them). A retiring service's forward method is not
/// remembered; its VIP is what matters, so it counts as direct routing for the sysctls.
pub fn host_services(config: &DirectorConfig, state: &State) -> Vec<ServiceVip> {
    let mut services = config.service_vips();
    services.extend(state.retiring.iter().flat_map(|r| {
        r.service.vips().into_iter().map(|v| ServiceVip {
            interface: v.interface,
            vip: v.vip,
            forward: Forward::Dr,
        })
    }));
    services
}

/// On the first pass after start, every destination of a configured service that no agent has
/// claimed yet is kept as it is until `until`: its agent gets the time to come back (its
/// retries back off to 10 s while the director was away) before anything changes.
pub fn adopt(
    registry: &mut Registry,
    state: &State,
    services: &[ServiceConfig],
    observed: &ObservedTable,
    until: Instant,
) {
    for service in services {
        let Some(have) = observed.services.get(&service.key()) else {
            continue;
        };
        for entry in have.destinations.values() {
            let addr = entry.destination.addr;
            // A configured realserver is in the desired table already: nothing to wait for.
            if service.realservers.iter().any(|rs| rs.address == addr) {
                continue;
            }
            if registry
                .get(&addr)
                .is_some_and(|rs| rs.state != LeaseState::Adopted)
            {
                continue;
            }
            let name = state
                .realservers
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| addr.to_string());
            info!(realserver = %name, %addr, service = %service.name, weight = entry.destination.weight,
                "adopted from the kernel table; kept as it is while its agent comes back");
            registry.adopt(addr, name, &service.name, entry.destination.weight, until);
        }
    }
}

/// Drops expired or deregistered realservers that have left every configured service.
pub fn forget_gone(registry: &mut Registry, services: &[ServiceConfig], observed: &ObservedTable) {
    let gone: Vec<IpAddr> = registry
        .iter()
        .filter(|rs| !rs.state.is_live())
        .filter(|rs| {
            !services.iter().any(|s| {
                observed
                    .destination(&s.key(), &s.destination(rs.address, 0).key())
                    .is_some()
            })
        })
        .map(|rs| rs.address)
        .collect();
    for addr in gone {
        registry.forget(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> DirectorConfig {
        let base = r#"
listen = "127.0.0.1:7700"
retire_timeout = "10s"
[[service]]
name = "llc-ssh"
vip = "10.0.0.100"
port = 22
interface = "eth0"
"#;
        DirectorConfig::parse(std::path::Path::new("t.toml"), &format!("{base}{text}"))
            .expect("config")
    }

    const SFTP: &str =
        "[[service]]\nname = \"sftp\"\nvip = \"10.0.0.101\"\nport = 2222\ninterface = \"eth0\"\n";

    #[test]
    fn a_service_that_leaves_the_config_retires_once_and_comes_back_if_configured_again() {
        let mut state = State::default();
        track_retiring(&mut state, &config(SFTP), 100);
        assert_eq!(state.owned.len(), 2);
        assert!(state.retiring.is_empty());

        track_retiring(&mut state, &config(""), 200);
        assert_eq!(state.owned.len(), 1);
        let retiring: Vec<_> = state
            .retiring
            .iter()
            .map(|r| (r.service.name.as_str(), r.since))
            .collect();
        assert_eq!(retiring, [("sftp", 200)]);
        // Idempotent: a later pass keeps the first date.
        track_retiring(&mut state, &config(""), 300);
        assert_eq!(state.retiring.iter().next().map(|r| r.since), Some(200));

        track_retiring(&mut state, &config(SFTP), 400);
        assert!(
            state.retiring.is_empty(),
            "configured again: owned, not retiring"
        );
        assert_eq!(state.owned.len(), 2);
    }

    #[test]
    fn a_retiring_service_goes_when_idle_or_at_its_deadline() {
        let r = RetiringService {
            service: owned_service(&config(SFTP).services[1]),
            since: 1000,
        };
        let timeout = Duration::from_secs(10);
        assert!(!retire_due(&r, false, timeout, 1009));
        assert!(retire_due(&r, true, timeout, 1001), "idle: at once");
        assert!(
            retire_due(&r, false, timeout, 1010),
            "the deadline: even with sessions"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_past_deadline_does_not_wake_the_reconciler_again() {
        let mut state = State::default();
        let now = unix_now();
        state.retiring.insert(RetiringService {
            service: owned_service(&config(SFTP).services[1]),
            since: now - 60,
        });
        assert_eq!(next_retire_deadline(&state, &config("")), None);
        state.retiring.insert(RetiringService {
            service: owned_service(&config("").services[0]),
            since: now,
        });
        let wake = next_retire_deadline(&state, &config("")).expect("a deadline ahead");
        assert!(wake >= Instant::now() + Duration::from_secs(9), "{wake:?}");
    }
}
