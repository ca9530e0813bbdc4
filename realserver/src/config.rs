//! The agent's configuration, `lb-agent --config /etc/lb/agent.toml`:
//!
//! ```toml
//! director = "http://129.129.190.53:7700"
//! # or, with several directors (high availability), every one of them registered with:
//! # directors = ["https://10.0.0.2:7700", "https://10.0.0.3:7700"]
//! name = "llc5"                      # optional: defaults to the hostname
//! address = "129.129.190.175"        # this realserver's address (RIP) as the director reaches it
//! rule_check_interval = "5s"         # optional: how often the REDIRECT rules are checked
//! deregister_timeout = "3s"          # optional: how long a stop waits for the director
//! metrics_listen = "127.0.0.1:9771"  # optional: GET /metrics for Prometheus; "" serves none
//! [[service]]
//! name = "llc-ssh"                   # joins the director's service of that name
//! weight = 1                         # optional: 0..=65535, default 1
//! [tls]                              # required with an https:// director (mutual TLS)
//! ca = "/etc/lb/tls/ca.pem"          # the cluster CA: the only one trusted for the director
//! cert = "/etc/lb/tls/llc5.pem"      # this agent's certificate, naming it (DNS name "llc5")
//! key = "/etc/lb/tls/llc5.key"
//! ```
//!
//! Every key is checked before anything is touched, and every problem is reported at once.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use lb_shared::config::{self, Section};
pub use lb_shared::config::{ConfigError, Problem};
use lb_shared::domain::{parse_name, parse_unicast, MAX_WEIGHT};
use lb_shared::duration;
pub use lb_shared::tls::TlsFiles;
pub use lb_shared::url::DirectorUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Every director the agent registers and heartbeats with, each on its own: `director`
    /// gives one, `directors` several. Never empty, no URL twice.
    pub directors: Vec<DirectorUrl>,
    /// Mutual TLS with an https director: the cluster CA (the only one trusted for the
    /// director) and this agent's own certificate and key.
    pub tls: Option<TlsFiles>,
    /// The realserver's name at the director, e.g. "llc5".
    pub name: String,
    /// This realserver's address (RIP) as the director reaches it.
    pub address: IpAddr,
    /// The director's services this realserver serves; never empty, names unique.
    pub services: Vec<ServiceConfig>,
    /// How often the REDIRECT rules are checked and put back if someone deleted them.
    pub rule_check_interval: Duration,
    /// How long a stop waits for the director to take the deregistration.
    pub deregister_timeout: Duration,
    /// Plain HTTP `GET /metrics` for Prometheus; None serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Pacing of retries while the director is unreachable or refuses; not in the file (the
    /// defaults suit every deployment), but tests shorten it.
    pub retry: RetryPolicy,
    /// How long one iptables call may take before the agent gives up on it; not in the file
    /// either, for the same reason.
    pub iptables_timeout: Duration,
}

/// Loopback, like the director's 9770: exposing metrics is the operator's choice.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9771);

/// More directors than any HA setup runs; a longer list is a mistake (a pasted fleet list).
pub const MAX_DIRECTORS: usize = 8;

/// Far longer than iptables takes on a busy host, and short enough that a stop (deregister,
/// then remove: about three calls per rule, bounded as a whole at 10 s) ends within systemd's
/// TimeoutStopSec.
pub const IPTABLES_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The director's service name, e.g. "llc-ssh".
    pub name: String,
    /// 0..=65535; 0 joins the service quiesced.
    pub weight: u32,
}

/// Exponential backoff bounds: the first retry waits about `initial`, each next one twice as
/// long, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl AgentConfig {
    /// Reads and checks the file; `name` defaults to this host's hostname.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        config::load(path, |root| read(root, config::system_hostname))
    }

    /// Like [`AgentConfig::load`], for text already in memory; `path` only names it in messages.
    pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        config::parse(path, text, |root| read(root, config::system_hostname))
    }

    /// The weight this realserver asks for in `service`, if it serves it.
    pub fn weight_of(&self, service: &str) -> Option<u32> {
        self.services
            .iter()
            .find(|s| s.name == service)
            .map(|s| s.weight)
    }
}

fn read(
    root: &Section<'_>,
    hostname: impl FnOnce() -> Result<String, String>,
) -> Option<AgentConfig> {
    let directors = read_directors(root);
    let tls = TlsFiles::read_section(root);
    if let Some(directors) = &directors {
        let https = directors.iter().any(DirectorUrl::is_https);
        match &tls {
            Some(None) if https => root.problem(
                "tls",
                "",
                "an https:// director needs [tls] with ca, cert and key: the director accepts only agents with a certificate",
            ),
            // `None` is a [tls] with problems: still a [tls] that http:// would ignore.
            Some(Some(_)) | None if !https => {
                root.problem("tls", "", "is only used with an https:// director")
            }
            _ => {}
        }
    }
    let name = config::read_name(root, hostname);
    let address = root.required("address", parse_unicast);
    let rule_check_interval = positive_duration(root, "rule_check_interval", 5);
    let deregister_timeout = positive_duration(root, "deregister_timeout", 3);
    let metrics_listen = root.optional("metrics_listen", lb_shared::metrics::parse_listen);
    let services = read_services(root);
    Some(AgentConfig {
        directors: directors?,
        tls: tls?,
        name: name?,
        address: address?,
        services: services?,
        rule_check_interval: rule_check_interval?,
        deregister_timeout: deregister_timeout?,
        metrics_listen: metrics_listen?.unwrap_or(Some(DEFAULT_METRICS_LISTEN)),
        retry: RetryPolicy::default(),
        iptables_timeout: IPTABLES_TIMEOUT,
    })
}

/// `director = URL` or `directors = [URL, ...]`, exactly one of them.
fn read_directors(root: &Section<'_>) -> Option<Vec<DirectorUrl>> {
    let written = root.peek("directors").cloned();
    match (root.peek("director").is_some(), written.is_some()) {
        (true, true) => {
            // Read both, so neither is also reported as unknown.
            let _ = root.optional("director", |_| Ok(()));
            let _ = root.strings("directors", |_| Ok(()));
            root.problem(
                "directors",
                "",
                "cannot be set together with director: keep one of them",
            );
            None
        }
        (false, false) => {
            root.problem(
                "director",
                "",
                "is required: the director's URL, or directors = [URL, ...] for several",
            );
            None
        }
        (true, false) => root
            .required("director", DirectorUrl::parse)
            .map(|d| vec![d]),
        (false, true) => {
            let bad = std::cell::Cell::new(false);
            let directors = root.strings("directors", |text| {
                DirectorUrl::parse(text).inspect_err(|_| bad.set(true))
            });
            let items = written.as_ref().and_then(toml::Value::as_array);
            // Not a list, or an item that is not a director URL: already reported.
            let items = items.filter(|items| !bad.get() && items.len() == directors.len())?;
            if directors.is_empty() {
                root.problem("directors", "[]", "must list at least one director URL");
                return None;
            }
            if directors.len() > MAX_DIRECTORS {
                root.problem(
                    "directors",
                    &toml::Value::Array(items.clone()).to_string(),
                    format!(
                        "lists {} directors: at most {MAX_DIRECTORS}",
                        directors.len()
                    ),
                );
                return None;
            }
            let mut complete = true;
            for (i, director) in directors.iter().enumerate() {
                if directors[..i].contains(director) {
                    root.problem(
                        &format!("directors[{i}]"),
                        &items[i].to_string(),
                        "is listed twice: give each director once",
                    );
                    complete = false;
                }
            }
            complete.then_some(directors)
        }
    }
}

/// The agent adds these durations to the clock, which panics past about 292 billion years
/// (found by fuzzing); a day is already more than a rule check or a stop needs.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

fn positive_duration(root: &Section<'_>, key: &str, default_secs: u64) -> Option<Duration> {
    let parsed = root.optional(key, |text| {
        let d = duration::parse(text)?;
        if d.is_zero() {
            Err("must be longer than 0s".into())
        } else if d > MAX_INTERVAL {
            Err(format!(
                "must be at most {}",
                duration::format(MAX_INTERVAL)
            ))
        } else {
            Ok(d)
        }
    })?;
    Some(parsed.unwrap_or(Duration::from_secs(default_secs)))
}

fn read_services(root: &Section<'_>) -> Option<Vec<ServiceConfig>> {
    let sections = root.tables("service");
    if sections.is_empty() {
        root.problem(
            "service",
            "",
            "at least one [[service]] is required: name the director's service this realserver serves",
        );
        return None;
    }
    let mut services = Vec::new();
    let mut complete = true;
    for section in &sections {
        let name = section.required("name", parse_name);
        let weight = section.integer::<u32>("weight", 0..=i64::from(MAX_WEIGHT), Some(1));
        if let Some(name) = &name {
            if services.iter().any(|s: &ServiceConfig| &s.name == name) {
                section.problem(
                    "name",
                    &format!("{name:?}"),
                    "is listed twice: give each service once",
                );
                complete = false;
            }
        }
        match (name, weight) {
            (Some(name), Some(weight)) => services.push(ServiceConfig { name, weight }),
            _ => complete = false,
        }
    }
    complete.then_some(services)
}

#[cfg(test)]
mod tests;
