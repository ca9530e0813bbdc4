//! This director's calls to its peers: the push after an admin change, the periodic exchange
//! (pull every page, merge, push back what the peer lacks), and the pull at start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tracing::{info, warn};

use lb_proto as pb;
use lb_proto::peer_client::PeerClient;

use super::wire::{records_from_proto, to_proto};
use super::{PeerError, CALL_TIMEOUT, MAX_RECORDS, PAGE};
use crate::config::{DirectorConfig, PeerConfig};
use crate::director::Director;
use crate::state::{newer, AdminRecord};

/// How long an admin call waits for its push to reachable peers before it answers; the push
/// goes on in the background and the next exchange catches up anyway.
pub const PUSH_WAIT: Duration = Duration::from_secs(1);

/// The longest pause between exchanges with a peer that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A client for one peer, over mutual TLS with this director's own certificate when it has
/// `[tls]`. Connects at once (bounded by [`CALL_TIMEOUT`]): a lazy channel would retry a
/// refused connection until the call's timeout instead of failing.
async fn client(
    config: &DirectorConfig,
    peer: &PeerConfig,
) -> Result<PeerClient<Channel>, PeerError> {
    let url = peer.url.to_string();
    let bad = |source| PeerError::Url {
        url: url.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(bad)?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    if let Some(files) = &config.tls {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&files.ca.pem))
            .identity(Identity::from_pem(&files.cert.pem, &files.key.pem));
        endpoint = endpoint.tls_config(tls).map_err(bad)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| PeerError::Unreachable {
            peer: peer.name.clone(),
            url: url.clone(),
            reason: crate::lbctl::causes(&e),
        })?;
    Ok(PeerClient::new(channel).max_decoding_message_size(crate::daemon::MAX_MESSAGE_BYTES))
}

fn call_error(peer: &PeerConfig, status: tonic::Status) -> PeerError {
    match status.code() {
        tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated
        | tonic::Code::InvalidArgument
        | tonic::Code::Unimplemented => PeerError::Refused {
            peer: peer.name.clone(),
            status,
        },
        _ => PeerError::Unreachable {
            peer: peer.name.clone(),
            url: peer.url.to_string(),
            reason: crate::lbctl::causes(&status),
        },
    }
}

/// Every record the peer holds, page by page.
async fn pull_all(
    client: &mut PeerClient<Channel>,
    peer: &PeerConfig,
) -> Result<Vec<AdminRecord>, PeerError> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = client
            .pull(pb::PeerPullRequest {
                after: after.clone(),
                limit: PAGE as u32,
            })
            .await
            .map_err(|s| call_error(peer, s))?
            .into_inner();
        let records = records_from_proto(&page.records).map_err(|reason| PeerError::BadAnswer {
            peer: peer.name.clone(),
            reason,
        })?;
        let Some(last) = records.last() else { break };
        // Names must grow page by page, or a peer could keep this loop going for ever.
        if last.realserver <= after {
            return Err(PeerError::BadAnswer {
                peer: peer.name.clone(),
                reason: "pages do not advance by realserver name".into(),
            });
        }
        after = last.realserver.clone();
        all.extend(records);
        if all.len() > MAX_RECORDS {
            return Err(PeerError::TooMany {
                peer: peer.name.clone(),
            });
        }
        if !page.more {
            break;
        }
    }
    Ok(all)
}

async fn push_records(
    client: &mut PeerClient<Channel>,
    peer: &PeerConfig,
    records: &[AdminRecord],
) -> Result<u32, PeerError> {
    let mut taken = 0;
    for page in records.chunks(PAGE) {
        let reply = client
            .push(pb::PeerPushRequest {
                records: page.iter().map(to_proto).collect(),
            })
            .await
            .map_err(|s| call_error(peer, s))?;
        taken += reply.into_inner().taken;
    }
    Ok(taken)
}

/// Takes the peer's newer fields here. Returns the realservers that changed.
async fn merge(director: &Director, records: &[AdminRecord]) -> Result<Vec<String>, PeerError> {
    let changed = director.merge_admin(records).await?;
    Ok(changed)
}

/// What one exchange did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exchanged {
    /// Realservers whose state here changed from the peer's.
    pub taken: Vec<String>,
    /// Records the peer lacked (or held older), pushed to it.
    pub given: usize,
}

/// One anti-entropy round with `peer`: pull all, merge, push back what it lacks.
pub async fn exchange(director: &Director, peer: &PeerConfig) -> Result<Exchanged, PeerError> {
    let config = director.config();
    let mut client = client(&config, peer).await?;
    let theirs = pull_all(&mut client, peer).await?;
    let taken = merge(director, &theirs).await?;
    let theirs: BTreeMap<&str, &AdminRecord> =
        theirs.iter().map(|r| (r.realserver.as_str(), r)).collect();
    let lacking: Vec<AdminRecord> = director
        .state()
        .admin_records()
        .into_iter()
        .filter(|mine| {
            let other = theirs.get(mine.realserver.as_str());
            newer(other.and_then(|o| o.drain.as_ref()), mine.drain.as_ref())
                || newer(other.and_then(|o| o.weight.as_ref()), mine.weight.as_ref())
        })
        .collect();
    if !lacking.is_empty() {
        push_records(&mut client, peer, &lacking).await?;
    }
    Ok(Exchanged {
        taken,
        given: lacking.len(),
    })
}

/// Records the outcome of a call to `peer` on the board and in the metrics, logging a change
/// of reachability once rather than at every retry.
fn note(director: &Director, peer: &PeerConfig, outcome: &Result<(), &PeerError>) -> u32 {
    let board = director.peer_board();
    match outcome {
        Ok(()) => {
            if board.succeeded(&peer.name) {
                info!(peer = %peer.name, "peer {} answers again", peer.name);
            }
            director.metrics().peer_exchange(&peer.name, None);
            0
        }
        Err(error) => {
            let failures = board.failed(&peer.name, error.to_string());
            if failures == 1 {
                warn!(peer = %peer.name, "{error}; this director keeps applying its own admin state and retries");
            }
            director
                .metrics()
                .peer_exchange(&peer.name, Some(error.kind()));
            failures
        }
    }
}

/// Exponential backoff after `failures` failed exchanges in a row.
fn next_round(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(8);
    interval
        .saturating_mul(factor)
        .min(MAX_BACKOFF.max(interval))
}

/// Exchanges with every peer every `peer_interval` (backing off from one that fails), until
/// the stop. Peers come from the configuration in force, so a reload adds or removes them.
pub async fn run(director: Arc<Director>, shutdown: CancellationToken) {
    let mut due: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    loop {
        let config = director.config();
        for name in director.peer_board().all().keys() {
            if config.peer(name).is_none() {
                director.metrics().forget_peer(name);
            }
        }
        director
            .peer_board()
            .retain(|name| config.peer(name).is_some());
        for peer in &config.peers {
            director.metrics().peer_configured(&peer.name);
        }
        due.retain(|name, _| config.peer(name).is_some());
        let now = tokio::time::Instant::now();
        let ready: Vec<&PeerConfig> = config
            .peers
            .iter()
            .filter(|p| due.get(&p.name).is_none_or(|at| *at <= now))
            .collect();
        let rounds = ready.iter().map(|peer| {
            let director = director.clone();
            async move {
                let outcome = exchange(&director, peer).await;
                if let Ok(done) = &outcome {
                    if !done.taken.is_empty() || done.given > 0 {
                        info!(peer = %peer.name, taken = ?done.taken, given = done.given, "admin state exchanged with peer {}", peer.name);
                    }
                }
                let failures = note(&director, peer, &outcome.as_ref().map(|_| ()));
                (peer.name.clone(), failures)
            }
        });
        let finished = tokio::select! {
            () = shutdown.cancelled() => return,
            finished = futures::future::join_all(rounds) => finished,
        };
        let now = tokio::time::Instant::now();
        for (name, failures) in finished {
            due.insert(name, now + next_round(config.peer_interval, failures));
        }
        let wake = due
            .values()
            .min()
            .copied()
            .unwrap_or(now + config.peer_interval)
            .min(now + config.peer_interval);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Pulls every peer's admin state before the first pass, so a restarted director does not
/// put its own older state into the kernel. Waits at most `peer_startup_wait` in all: a
/// peer that is down (or starting at the same time) never holds up the start.
pub async fn at_start(director: &Director) {
    let config = director.config();
    if config.peers.is_empty() {
        return;
    }
    for peer in &config.peers {
        director.metrics().peer_configured(&peer.name);
    }
    let config = &config;
    let pulls = config.peers.iter().map(|peer| async move {
        let outcome = async {
            let mut client = client(config, peer).await?;
            let theirs = pull_all(&mut client, peer).await?;
            merge(director, &theirs).await
        }
        .await;
        note(director, peer, &outcome.as_ref().map(|_| ()));
        match outcome {
            Ok(taken) => {
                info!(peer = %peer.name, ?taken, "admin state from peer {} before the first pass", peer.name);
                true
            }
            Err(error) => {
                warn!(peer = %peer.name, "{error}");
                false
            }
        }
    });
    let answered =
        tokio::time::timeout(config.peer_startup_wait, futures::future::join_all(pulls)).await;
    let answered = answered.map(|all| all.into_iter().filter(|ok| *ok).count());
    match answered {
        Ok(n) if n == config.peers.len() => {}
        Ok(n) => warn!(
            "{n} of {} peers answered at start: the first pass uses this director's own admin state for the rest; the first exchange brings in anything newer",
            config.peers.len()
        ),
        Err(_) => warn!(
            "peers did not all answer within peer_startup_wait ({}): starting with the admin state gathered so far; the first exchange brings in anything newer",
            lb_shared::duration::format(config.peer_startup_wait)
        ),
    }
}

/// Which peers took an admin change in time, and which did not (yet).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub confirmed: Vec<String>,
    pub pending: Vec<(String, String)>,
}

impl Pushed {
    /// "; on peers llclb2" / "; not yet on llclb2 (unreachable ...): it takes it at the next
    /// exchange", for the operator's answer and the audit line.
    pub fn note(&self) -> String {
        let mut parts = Vec::new();
        if !self.confirmed.is_empty() {
            parts.push(format!("held by peer(s) {}", self.confirmed.join(", ")));
        }
        for (peer, why) in &self.pending {
            parts.push(format!(
                "not yet on {peer} ({why}): it takes it at the next exchange"
            ));
        }
        parts.join("; ")
    }
}

/// Pushes one realserver's record to every peer. Waits up to [`PUSH_WAIT`] for peers that
/// answered their last call, not at all for one known to be away; pushes still under way go
/// on in the background.
pub async fn push(director: &Arc<Director>, record: AdminRecord) -> Pushed {
    let config = director.config();
    let mut waiting = Vec::new();
    let mut pushed = Pushed::default();
    for peer in config.peers.iter().cloned() {
        let name = peer.name.clone();
        let health = director.peer_board().get(&name);
        let director = director.clone();
        let record = record.clone();
        let config = config.clone();
        let task = tokio::spawn(async move {
            let outcome = async {
                let mut client = client(&config, &peer).await?;
                push_records(&mut client, &peer, std::slice::from_ref(&record)).await
            }
            .await;
            note(&director, &peer, &outcome.as_ref().map(|_| ()));
            outcome.map(|_| ()).map_err(|e| e.to_string())
        });
        if health.failures > 0 {
            let why = health.last_error.unwrap_or_else(|| "unreachable".into());
            pushed.pending.push((name, why));
        } else {
            waiting.push((name, task));
        }
    }
    let deadline = tokio::time::Instant::now() + PUSH_WAIT;
    for (name, task) in waiting {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => pushed.confirmed.push(name),
            Ok(Ok(Err(why))) => pushed.pending.push((name, why)),
            Ok(Err(join)) => pushed.pending.push((name, join.to_string())),
            Err(_) => pushed.pending.push((
                name,
                format!(
                    "no answer within {}",
                    lb_shared::duration::format(PUSH_WAIT)
                ),
            )),
        }
    }
    pushed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_never_below_the_interval() {
        let s = Duration::from_secs;
        assert_eq!(next_round(s(5), 0), s(5));
        assert_eq!(next_round(s(5), 1), s(10));
        assert_eq!(next_round(s(5), 3), s(40));
        assert_eq!(next_round(s(5), 30), s(60));
        assert_eq!(next_round(s(120), 4), s(120));
    }
}
