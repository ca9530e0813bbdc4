//! The director's own `name` and its `[[peer]]` directors, with whom it keeps the operator's
//! admin state the same (issue 12; README, "Admin state across directors").

use std::time::Duration;

use lb_shared::config::{self, Section};
use lb_shared::domain;
use lb_shared::url::DirectorUrl;

/// More directors than any HA or ECMP setup runs; a longer list is a pasted fleet list.
pub const MAX_PEERS: usize = 8;

/// One `[[peer]]`: another director of this site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The name in the peer's certificate (with `[tls]`), and its `name` in its own config.
    pub name: String,
    /// Where its gRPC port is: `https://10.0.0.3:7700` (or `http://` without `[tls]`).
    pub url: DirectorUrl,
}

/// What `read` finds of the director's identity and its peers.
pub(super) struct Peers {
    pub name: String,
    pub peers: Vec<PeerConfig>,
    pub interval: Duration,
    pub startup_wait: Duration,
}

pub const DEFAULT_PEER_INTERVAL: Duration = Duration::from_secs(5);
/// Long enough for a peer on the same network to answer a few pages, short enough that a
/// start never waits noticeably for a peer that is down.
pub const DEFAULT_PEER_STARTUP_WAIT: Duration = Duration::from_secs(3);

/// Reads `name`, `[[peer]]`, `peer_interval` and `peer_startup_wait`. `tls` is what `[tls]`
/// read as: `Some(false)` none, `Some(true)` one, None one with problems (still a [tls]).
pub(super) fn read(
    root: &Section<'_>,
    hostname: impl FnOnce() -> Result<String, String>,
    tls: bool,
) -> Option<Peers> {
    let name = if root.has("name") || root.has("peer") {
        config::read_name(root, hostname)
    } else {
        // Without peers the name only labels this director's status and admin writes: a
        // hostname that is no usable name (a container's or an initramfs's "(none)") must
        // not keep a single director from starting. With peers it must be one, as checked.
        Some(hostname().unwrap_or_else(|_| "lb-director".to_owned()))
    };
    let interval = root.optional("peer_interval", |s| {
        super::within(s, Duration::from_millis(100), Duration::from_secs(3600))
    });
    let startup_wait = root.optional("peer_startup_wait", |s| {
        super::within(s, Duration::ZERO, Duration::from_secs(60))
    });
    let sections = root.tables("peer");
    if sections.len() > MAX_PEERS {
        root.problem(
            "peer",
            "",
            format!("lists {} peers: at most {MAX_PEERS}", sections.len()),
        );
    }
    // Each accepted peer with its index in the file, for the duplicates' messages.
    let mut list: Vec<(usize, PeerConfig)> = Vec::new();
    let mut complete = true;
    for (i, section) in sections.iter().enumerate() {
        let Some(peer) = read_peer(section, tls) else {
            complete = false;
            continue;
        };
        if name.as_deref() == Some(peer.name.as_str()) {
            section.problem(
                "name",
                &format!("{:?}", peer.name),
                "is this director's own name: list the other directors only (or set name)",
            );
        } else if let Some((j, _)) = list.iter().find(|(_, p)| p.name == peer.name) {
            section.problem(
                "name",
                &format!("{:?}", peer.name),
                format!("is also peer[{j}]: list each director once"),
            );
        } else if let Some((j, _)) = list.iter().find(|(_, p)| p.url == peer.url) {
            section.problem(
                "url",
                &format!("\"{}\"", peer.url),
                format!("is also the url of peer[{j}]: one director has one url"),
            );
        } else {
            list.push((i, peer));
            continue;
        }
        complete = false;
    }
    let peers = complete.then(|| list.into_iter().map(|(_, p)| p).collect());
    Some(Peers {
        name: name?,
        peers: peers?,
        interval: interval?.unwrap_or(DEFAULT_PEER_INTERVAL),
        startup_wait: startup_wait?.unwrap_or(DEFAULT_PEER_STARTUP_WAIT),
    })
}

fn read_peer(section: &Section<'_>, tls: bool) -> Option<PeerConfig> {
    let name = section.required("name", domain::parse_name);
    let url = section.required("url", |text| {
        let url = DirectorUrl::parse(text)?;
        match (url.is_https(), tls) {
            (true, false) => Err("is https:// but this director has no [tls] to show the peer a certificate: add [tls] or use http:// on an insecure setup".into()),
            (false, true) => Err("is http:// but this director has [tls]: peers talk mutual TLS, write https://".into()),
            _ => Ok(url),
        }
    });
    Some(PeerConfig {
        name: name?,
        url: url?,
    })
}
