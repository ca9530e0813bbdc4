//! What the director sessions share besides the rules: the board where each posts its state
//! (summed up for the agent's watchers, systemd's status line and the metrics), and the
//! self-checks, which run once for the realserver whatever the number of directors.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lb_proto::ServiceHealth;
use lb_shared::notify;
use tokio::sync::watch;

use super::AgentState;
use crate::selfcheck::{SelfCheck, SelfChecks, Verdicts};

/// Which director session something belongs to: stable while a reload changes the session's
/// URL (a single `director` edited in place keeps its lease).
pub(crate) type SessionId = u64;

/// One session's latest post.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub(crate) director: String,
    pub(crate) state: AgentState,
    pub(crate) status: String,
}

#[derive(Clone)]
pub(crate) struct Board {
    inner: Arc<Mutex<Posts>>,
    state: watch::Sender<AgentState>,
    checks: Checks,
}

#[derive(Default)]
struct Posts {
    /// In config order.
    sessions: Vec<(SessionId, Post)>,
    /// Shutdown began: the sessions' posts no longer count.
    stopping: bool,
}

impl Board {
    pub(crate) fn new(state: watch::Sender<AgentState>, checks: Checks) -> Board {
        Board {
            inner: Arc::default(),
            state,
            checks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Posts> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A session joins (at start or by a reload), `Starting` until it posts.
    pub(crate) fn join(&self, id: SessionId, director: String, authority: &str) {
        let post = Post {
            director,
            state: AgentState::Starting,
            status: format!("registering with {authority}"),
        };
        self.lock().sessions.push((id, post));
    }

    /// A reload removed the session's director.
    pub(crate) fn leave(&self, id: SessionId) {
        self.lock().sessions.retain(|(s, _)| *s != id);
        self.show();
    }

    /// A reload changed the session's URL (one `director` edited in place).
    pub(crate) fn rename(&self, id: SessionId, director: String) {
        if let Some((_, post)) = self.lock().sessions.iter_mut().find(|(s, _)| *s == id) {
            post.director = director;
        }
    }

    /// The session's new state and status line; an unknown session (already removed) or a
    /// post after shutdown began changes nothing.
    pub(crate) fn post(&self, id: SessionId, state: AgentState, status: String) {
        {
            let mut posts = self.lock();
            if posts.stopping {
                return;
            }
            let Some((_, post)) = posts.sessions.iter_mut().find(|(s, _)| *s == id) else {
                return;
            };
            post.state = state;
            post.status = status;
        }
        self.show();
    }

    /// Shutdown: `state` for everyone, whatever the sessions post from now on.
    pub(crate) fn stopping(&self, state: AgentState, status: &str) {
        self.lock().stopping = true;
        notify::status(status);
        self.state.send_replace(state);
    }

    /// Each session's director and its post, in config order; empty once stopping.
    pub(crate) fn posts(&self) -> Vec<Post> {
        let posts = self.lock();
        if posts.stopping {
            return Vec::new();
        }
        posts.sessions.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Every session's director, stopping or not.
    pub(crate) fn directors(&self) -> Vec<String> {
        let posts = self.lock();
        posts
            .sessions
            .iter()
            .map(|(_, p)| p.director.clone())
            .collect()
    }

    /// Publishes the sum of the posts: to watchers the first registered session's state (or
    /// the first session's when none is), so with one director it is that director's; to
    /// systemd every session's status line, then the services that are down.
    pub(crate) fn show(&self) {
        let posts = self.posts();
        let Some(first) = posts.first() else { return };
        let state = posts
            .iter()
            .find(|p| matches!(p.state, AgentState::Registered { .. }))
            .unwrap_or(first)
            .state
            .clone();
        let mut status = if posts.len() == 1 {
            first.status.clone()
        } else {
            let each: Vec<String> = posts
                .iter()
                .map(|p| match p.state {
                    AgentState::Registered { .. } | AgentState::Starting => p.status.clone(),
                    _ => format!("{}: {}", authority_of(&p.director), p.status),
                })
                .collect();
            each.join("; ")
        };
        if posts
            .iter()
            .any(|p| matches!(p.state, AgentState::Registered { .. }))
        {
            for (service, reason) in self.checks.down() {
                status.push_str(&format!(", {service} down: {reason}"));
            }
        }
        notify::status(&status);
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }
}

/// "10.0.0.3:7700" of "http://10.0.0.3:7700/".
fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
}

/// The realserver's self-checks, shared by the sessions: each lease names the checks its
/// director wants, and the union runs (the first session's config for a service both name).
#[derive(Clone)]
pub(crate) struct Checks {
    inner: Arc<Mutex<ChecksInner>>,
    verdicts: watch::Receiver<Verdicts>,
}

struct ChecksInner {
    selfchecks: SelfChecks,
    wanted: BTreeMap<SessionId, BTreeMap<String, SelfCheck>>,
}

impl Checks {
    pub(crate) fn new() -> Checks {
        let selfchecks = SelfChecks::new();
        Checks {
            verdicts: selfchecks.subscribe(),
            inner: Arc::new(Mutex::new(ChecksInner {
                selfchecks,
                wanted: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChecksInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Verdicts> {
        self.verdicts.clone()
    }

    /// `session`'s lease asks for `checks` (None: the session ended).
    pub(crate) fn want(&self, session: SessionId, checks: Option<BTreeMap<String, SelfCheck>>) {
        let mut inner = self.lock();
        match checks {
            Some(checks) => inner.wanted.insert(session, checks),
            None => inner.wanted.remove(&session),
        };
        let mut union = BTreeMap::new();
        for checks in inner.wanted.values() {
            for (service, check) in checks {
                union
                    .entry(service.clone())
                    .or_insert_with(|| check.clone());
            }
        }
        inner.selfchecks.apply(union);
    }

    /// Stops every check (shutdown).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.wanted.clear();
        inner.selfchecks.apply(BTreeMap::new());
    }

    pub(crate) fn report(&self) -> Vec<ServiceHealth> {
        self.lock().selfchecks.report()
    }

    pub(crate) fn down(&self) -> Vec<(String, String)> {
        self.lock().selfchecks.down()
    }
}
