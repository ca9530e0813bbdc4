//! The agent's side of the director's `Registry` gRPC service: the four calls, each answer
//! checked and each failure sorted into what the agent does about it.

use std::collections::BTreeMap;
use std::time::Duration;

use lb_proto::registry_client::RegistryClient;
use lb_proto::{
    ConfirmRequest, DeregisterRequest, HeartbeatRequest, RegisterRequest, ServiceBinding,
    ServiceHealth, ServiceWeight,
};
use lb_shared::domain::{parse_unicast, Protocol};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use crate::config::{AgentConfig, DirectorUrl, TlsFiles};
use crate::rules::{RedirectRule, ServicePort};
use crate::selfcheck::{SelfCheck, SelfCheckError};

/// A connection attempt that takes longer than this counts as "director unreachable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Every call is bounded, so a director that accepts and never answers cannot stall the agent.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on the director connection, idle or not: a director whose link went down
/// leaves the connection open on this side, and without pings every call queued on it until
/// TCP's retransmissions (backed off to about a minute) found the director back. With them
/// the dead connection is dropped within about 15 s and the next call dials afresh (seen in
/// the lab's e2e-ha: llclb1 answered again about a minute after its link came back). The
/// ping's answer may take long on a loaded host: a dropped live connection costs a new TLS
/// handshake, and a heartbeat that failed with it is retried within the lease.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A lease the director granted, with the rules its answer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) id: String,
    pub(crate) ttl: Duration,
    pub(crate) rules: Vec<RedirectRule>,
    /// The self-check of each service whose binding asks for one.
    pub(crate) checks: BTreeMap<String, SelfCheck>,
    /// The bindings' checks the agent cannot run; the registration goes ahead without them.
    pub(crate) unchecked: Vec<SelfCheckError>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer: connection refused, timed out, reset. Retried with backoff.
    #[error("director unreachable: {}", describe(.0))]
    Unreachable(#[source] Status),
    /// The director restarted or let the lease expire: register again.
    #[error("director does not know lease {lease_id}: {}", .source.message())]
    LeaseUnknown {
        lease_id: String,
        #[source]
        source: Status,
    },
    /// The director answered with an error (a bad name, an unknown service, a name taken by
    /// another address): an operator has to act, the agent retries meanwhile.
    #[error("director refused ({:?}): {}", .0.code(), .0.message())]
    Refused(#[source] Status),
    #[error("director's answer is unusable: {0}")]
    BadAnswer(String),
    #[error("{url} is https but the config has no [tls] (ca, cert, key)")]
    TlsMissing { url: String },
    #[error("cannot set up TLS for {url}: {source}")]
    Tls {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// tonic puts the transport's reason at the bottom of the source chain, and repeats itself on
/// the way down: the message and the deepest cause say it all.
fn describe(status: &Status) -> String {
    let mut deepest = None;
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        deepest = Some(cause.to_string());
        source = cause.source();
    }
    match deepest {
        Some(cause) if !status.message().contains(&cause) => {
            format!("{}: {cause}", status.message())
        }
        _ => status.message().to_owned(),
    }
}

#[derive(Clone)]
pub(crate) struct Registry {
    client: RegistryClient<Channel>,
}

impl Registry {
    /// Connects lazily: the first call makes the connection, and later calls make a new one
    /// after it broke, so a director that is down at start is simply retried.
    pub(crate) fn new(
        director: &DirectorUrl,
        tls: Option<&TlsFiles>,
    ) -> Result<Registry, RegistryError> {
        let mut endpoint = Endpoint::from(director.uri().clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if director.is_https() {
            // The cluster CA replaces the host's trust store: it vouches for the director and
            // for nothing else; the agent's own certificate names it to the director.
            let Some(files) = tls else {
                return Err(RegistryError::TlsMissing {
                    url: director.to_string(),
                });
            };
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&files.ca.pem))
                .identity(Identity::from_pem(&files.cert.pem, &files.key.pem));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|source| RegistryError::Tls {
                    url: director.to_string(),
                    source,
                })?;
        }
        Ok(Registry {
            client: RegistryClient::new(endpoint.connect_lazy()),
        })
    }

    pub(crate) async fn register(&self, config: &AgentConfig) -> Result<Lease, RegistryError> {
        let request = RegisterRequest {
            name: config.name.clone(),
            address: config.address.to_string(),
            services: config
                .services
                .iter()
                .map(|s| ServiceWeight {
                    service: s.name.clone(),
                    weight: s.weight,
                })
                .collect(),
        };
        let answer = self
            .client
            .clone()
            .register(request)
            .await
            .map_err(|status| sort(status, None))?
            .into_inner();
        let rules = rules_for(config, &answer.bindings).map_err(RegistryError::BadAnswer)?;
        let (checks, unchecked) = checks_for(config, &answer.bindings, &rules);
        Ok(Lease {
            id: answer.lease_id,
            ttl: ttl(answer.lease_ttl_ms)?,
            rules,
            checks,
            unchecked,
        })
    }

    pub(crate) async fn confirm(&self, lease_id: &str) -> Result<(), RegistryError> {
        let request = ConfirmRequest {
            lease_id: lease_id.to_owned(),
        };
        self.client
            .clone()
            .confirm(request)
            .await
            .map_err(|status| sort(status, Some(lease_id)))?;
        Ok(())
    }

    /// Renews the lease, telling the director the agent's verdict on each checked service;
    /// answers the TTL the director wants now.
    pub(crate) async fn heartbeat(
        &self,
        lease_id: &str,
        health: Vec<ServiceHealth>,
    ) -> Result<Duration, RegistryError> {
        let request = HeartbeatRequest {
            lease_id: lease_id.to_owned(),
            health,
        };
        let answer = self
            .client
            .clone()
            .heartbeat(request)
            .await
            .map_err(|status| sort(status, Some(lease_id)))?;
        ttl(answer.into_inner().lease_ttl_ms)
    }

    pub(crate) async fn deregister(&self, lease_id: &str) -> Result<(), RegistryError> {
        let request = DeregisterRequest {
            lease_id: lease_id.to_owned(),
        };
        self.client
            .clone()
            .deregister(request)
            .await
            .map_err(|status| sort(status, Some(lease_id)))?;
        Ok(())
    }
}

fn sort(status: Status, lease_id: Option<&str>) -> RegistryError {
    match (status.code(), lease_id) {
        // What tonic answers when no HTTP/2 exchange happened or it broke off.
        (Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown, _) => {
            RegistryError::Unreachable(status)
        }
        (Code::NotFound, Some(lease_id)) => RegistryError::LeaseUnknown {
            lease_id: lease_id.to_owned(),
            source: status,
        },
        _ => RegistryError::Refused(status),
    }
}

fn ttl(ms: u64) -> Result<Duration, RegistryError> {
    if ms == 0 {
        return Err(RegistryError::BadAnswer("lease TTL is 0".into()));
    }
    Ok(Duration::from_millis(ms))
}

/// One rule per configured service, from the director's bindings; anything missing or
/// malformed makes the whole answer unusable, since a half-installed set would be confirmed.
fn rules_for(
    config: &AgentConfig,
    bindings: &[ServiceBinding],
) -> Result<Vec<RedirectRule>, String> {
    let mut rules: Vec<RedirectRule> = Vec::new();
    for binding in bindings {
        if config.weight_of(&binding.service).is_none() {
            return Err(format!(
                "it binds service {:?}, which this agent did not ask for",
                binding.service
            ));
        }
        let rule = rule_for(binding)?;
        // A fwmark service has one binding per VIP; anything else once.
        if rules
            .iter()
            .any(|r| r.service == rule.service && (r.port.is_some() || r.vip == rule.vip))
        {
            return Err(format!("it binds service {:?} twice", binding.service));
        }
        if rule.vip.is_ipv6() != config.address.is_ipv6() {
            return Err(format!(
                "service {:?}: VIP {} is not of the family of this agent's address {}",
                rule.service, rule.vip, config.address
            ));
        }
        rules.push(rule);
    }
    if let Some(missing) = config
        .services
        .iter()
        .find(|s| !rules.iter().any(|r| r.service == s.name))
    {
        return Err(format!("it has no binding for service {:?}", missing.name));
    }
    Ok(rules)
}

/// The self-checks the bindings ask for, each at this realserver's address and the port of its
/// service's rule (`rules` are the bindings' rules, already checked).
fn checks_for(
    config: &AgentConfig,
    bindings: &[ServiceBinding],
    rules: &[RedirectRule],
) -> (BTreeMap<String, SelfCheck>, Vec<SelfCheckError>) {
    let mut checks = BTreeMap::new();
    let mut unchecked = Vec::new();
    for binding in bindings {
        let Some(rule) = rules.iter().find(|r| r.service == binding.service) else {
            continue;
        };
        // One check per service, also for a fwmark service's several bindings.
        if checks.contains_key(&rule.service) {
            continue;
        }
        let check = SelfCheck::from_binding(
            &rule.service,
            binding.check.as_ref(),
            config.address,
            rule.port.map_or(0, |p| p.port),
        );
        match check {
            Ok(Some(check)) => {
                checks.insert(rule.service.clone(), check);
            }
            Ok(None) => {}
            Err(error) => unchecked.push(error),
        }
    }
    (checks, unchecked)
}

fn rule_for(binding: &ServiceBinding) -> Result<RedirectRule, String> {
    let context = |what: String| format!("service {:?}: {what}", binding.service);
    let vip =
        parse_unicast(&binding.vip).map_err(|e| context(format!("VIP {:?} {e}", binding.vip)))?;
    if binding.fwmark != 0 {
        // The mark decides what reaches this host: the rule takes every packet for the VIP.
        if binding.port != 0 || binding.protocol != 0 {
            return Err(context(format!(
                "fwmark {} with port {} and protocol {}: a fwmark service has neither",
                binding.fwmark, binding.port, binding.protocol
            )));
        }
        return Ok(RedirectRule {
            service: binding.service.clone(),
            vip,
            port: None,
        });
    }
    let port = u16::try_from(binding.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| context(format!("port {} is not 1 to 65535", binding.port)))?;
    let protocol = match binding.protocol() {
        lb_proto::Protocol::Tcp => Protocol::Tcp,
        lb_proto::Protocol::Udp => Protocol::Udp,
        lb_proto::Protocol::Sctp => Protocol::Sctp,
        lb_proto::Protocol::Unspecified => {
            return Err(context(format!(
                "protocol {} is not tcp, udp or sctp",
                binding.protocol
            )))
        }
    };
    Ok(RedirectRule {
        service: binding.service.clone(),
        vip,
        port: Some(ServicePort { protocol, port }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> AgentConfig {
        AgentConfig::parse(
            Path::new("agent.toml"),
            "director = \"http://127.0.0.1:7700\"\nname = \"llc5\"\naddress = \"10.0.0.11\"\n\
             [[service]]\nname = \"llc-ssh\"\n",
        )
        .unwrap()
    }

    fn binding(
        service: &str,
        vip: &str,
        port: u32,
        protocol: lb_proto::Protocol,
    ) -> ServiceBinding {
        ServiceBinding {
            service: service.into(),
            vip: vip.into(),
            port,
            protocol: protocol.into(),
            check: None,
            fwmark: 0,
        }
    }

    /// A fwmark service's binding of one of its VIPs.
    fn fwmark_binding(service: &str, vip: &str, port: u32) -> ServiceBinding {
        ServiceBinding {
            fwmark: 7,
            check: Some(lb_proto::HealthCheck {
                r#type: "ssh".into(),
                interval_ms: 2000,
                timeout_ms: 1000,
                fall: 3,
                rise: 2,
                port,
            }),
            ..binding(service, vip, 0, lb_proto::Protocol::Unspecified)
        }
    }

    #[test]
    fn a_fwmark_service_gets_a_rule_per_vip_and_one_check() {
        let config = config();
        let bindings = [
            fwmark_binding("llc-ssh", "10.0.0.101", 22),
            fwmark_binding("llc-ssh", "10.0.0.102", 22),
        ];
        let rules = rules_for(&config, &bindings).unwrap();
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "iptables -t nat -A PREROUTING -d 10.0.0.101/32 -m comment --comment \"lb-agent:llc-ssh\" -j REDIRECT",
                "iptables -t nat -A PREROUTING -d 10.0.0.102/32 -m comment --comment \"lb-agent:llc-ssh\" -j REDIRECT",
            ]
        );
        let (checks, unchecked) = checks_for(&config, &bindings, &rules);
        assert_eq!(checks["llc-ssh"].addr.to_string(), "10.0.0.11:22");
        assert!(unchecked.is_empty());
        // A check without a port has nothing to probe on a fwmark service.
        let no_port = [fwmark_binding("llc-ssh", "10.0.0.101", 0)];
        let rules = rules_for(&config, &no_port).unwrap();
        let (checks, unchecked) = checks_for(&config, &no_port, &rules);
        assert!(checks.is_empty());
        assert_eq!(
            unchecked[0].to_string(),
            "service \"llc-ssh\": the check names no port to probe"
        );
    }

    #[test]
    fn bindings_become_rules() {
        let rules = rules_for(
            &config(),
            &[binding(
                "llc-ssh",
                "10.0.0.100",
                22,
                lb_proto::Protocol::Tcp,
            )],
        )
        .unwrap();
        assert_eq!(
            rules[0].to_string(),
            "iptables -t nat -A PREROUTING -d 10.0.0.100/32 -p tcp --dport 22 -m comment --comment \"lb-agent:llc-ssh\" -j REDIRECT"
        );
    }

    #[test]
    fn unusable_bindings_are_refused_with_a_reason() {
        use lb_proto::Protocol::{Tcp, Unspecified};
        let cases = [
            (vec![], "no binding for service \"llc-ssh\""),
            (
                vec![binding("other", "10.0.0.100", 22, Tcp)],
                "did not ask for",
            ),
            (
                vec![
                    binding("llc-ssh", "10.0.0.100", 22, Tcp),
                    binding("llc-ssh", "10.0.0.100", 22, Tcp),
                ],
                "twice",
            ),
            (
                vec![binding("llc-ssh", "10.0.0", 22, Tcp)],
                "VIP \"10.0.0\" is not an IP address",
            ),
            (
                vec![binding("llc-ssh", "10.0.0.100", 0, Tcp)],
                "port 0 is not 1 to 65535",
            ),
            (
                vec![binding("llc-ssh", "10.0.0.100", 70000, Tcp)],
                "port 70000",
            ),
            (
                vec![binding("llc-ssh", "10.0.0.100", 22, Unspecified)],
                "protocol 0",
            ),
            (
                vec![binding("llc-ssh", "fd00::100", 22, Tcp)],
                "VIP fd00::100 is not of the family of this agent's address 10.0.0.11",
            ),
            (
                vec![
                    fwmark_binding("llc-ssh", "10.0.0.101", 22),
                    fwmark_binding("llc-ssh", "10.0.0.101", 22),
                ],
                "twice",
            ),
            (
                vec![ServiceBinding {
                    port: 22,
                    ..fwmark_binding("llc-ssh", "10.0.0.101", 22)
                }],
                "a fwmark service has neither",
            ),
        ];
        for (bindings, expected) in cases {
            let err = rules_for(&config(), &bindings).unwrap_err();
            assert!(err.contains(expected), "{bindings:?}: {err}");
        }
    }

    #[test]
    fn checks_probe_this_realserver_at_the_services_port() {
        let check = |kind: &str| lb_proto::HealthCheck {
            r#type: kind.into(),
            interval_ms: 2000,
            timeout_ms: 1000,
            fall: 3,
            rise: 2,
            port: 0,
        };
        let mut ssh = binding("llc-ssh", "10.0.0.100", 2222, lb_proto::Protocol::Tcp);
        ssh.check = Some(check("ssh"));
        let config = config();
        let rules = rules_for(&config, std::slice::from_ref(&ssh)).unwrap();
        let (checks, unchecked) = checks_for(&config, &[ssh.clone()], &rules);
        assert_eq!(checks["llc-ssh"].addr.to_string(), "10.0.0.11:2222");
        assert!(unchecked.is_empty());

        for none in [None, Some(check("none"))] {
            ssh.check = none;
            let (checks, unchecked) = checks_for(&config, &[ssh.clone()], &rules);
            assert!(checks.is_empty() && unchecked.is_empty(), "{ssh:?}");
        }
        ssh.check = Some(check("http"));
        let (checks, unchecked) = checks_for(&config, &[ssh.clone()], &rules);
        assert!(checks.is_empty());
        assert_eq!(
            unchecked.len(),
            1,
            "a check it cannot run does not refuse the lease"
        );
    }

    #[test]
    fn failures_are_sorted_by_what_the_agent_does() {
        assert!(matches!(
            sort(Status::unavailable("connection refused"), Some("l1")),
            RegistryError::Unreachable(_)
        ));
        assert!(matches!(
            sort(Status::not_found("no lease l1"), Some("l1")),
            RegistryError::LeaseUnknown { .. }
        ));
        let refused = sort(Status::not_found("no service named llc-ssh"), None);
        assert_eq!(
            refused.to_string(),
            "director refused (NotFound): no service named llc-ssh"
        );
        assert!(matches!(
            sort(Status::already_exists("llc5 is 10.0.0.12"), None),
            RegistryError::Refused(_)
        ));
        assert!(ttl(0).is_err());
    }
}
