//! The gRPC face of the director: `Registry` for agents, `Admin` for lbctl. Requests are
//! validated here, field by field, before anything changes; errors become the Status code a
//! client can act on.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use lb_proto as pb;
use lb_shared::domain::{self, Protocol};

use tokio_util::sync::CancellationToken;

use crate::access::Caller;
use crate::config::ServiceConfig;
use crate::director::{Director, DirectorError};
use crate::registry::{AgentVerdict, RegistryError};

/// An agent's reason for a down verdict is a sentence, not a document.
const MAX_REASON_BYTES: usize = 256;
use crate::view::{connections_of, status};

impl From<DirectorError> for Status {
    fn from(error: DirectorError) -> Status {
        let message = error.to_string();
        match error {
            DirectorError::Registry(RegistryError::NameTaken { .. })
            | DirectorError::Registry(RegistryError::AddressTaken { .. })
            | DirectorError::ConfiguredStatically { .. } => Status::already_exists(message),
            DirectorError::Registry(RegistryError::UnknownLease(_)) => Status::not_found(message),
            DirectorError::Registry(RegistryError::Full) => Status::resource_exhausted(message),
            DirectorError::UnknownService { .. } | DirectorError::UnknownRealServer(_) => {
                Status::not_found(message)
            }
            DirectorError::WrongFamily { .. } => Status::invalid_argument(message),
            // A full or read-only state_dir: the operator can fix it and try again.
            DirectorError::State(_) => Status::unavailable(message),
        }
    }
}

fn invalid(field: &str, problem: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

fn name_field(field: &str, name: &str) -> Result<(), Status> {
    domain::validate_name(name).map_err(|p| invalid(field, format!("{name:?} {p}")))
}

fn lease_field(lease_id: &str) -> Result<(), Status> {
    // Lease ids are 32 hex digits; anything else cannot be ours, refuse it without a lookup.
    if lease_id.len() != 32 || !lease_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("lease_id", "is not a lease id: register first"));
    }
    Ok(())
}

fn weight_field(field: &str, weight: u32) -> Result<u32, Status> {
    domain::validate_weight(weight).map_err(|p| invalid(field, p))
}

pub fn proto_protocol(protocol: Protocol) -> pb::Protocol {
    match protocol {
        Protocol::Tcp => pb::Protocol::Tcp,
        Protocol::Udp => pb::Protocol::Udp,
        Protocol::Sctp => pb::Protocol::Sctp,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub struct RegistryService {
    director: Arc<Director>,
}

impl RegistryService {
    pub fn new(director: Arc<Director>) -> Self {
        RegistryService { director }
    }

    /// A lease may be used only by the realserver that holds it.
    fn lease_holder(&self, caller: &Caller, lease_id: &str) -> Result<(), Status> {
        lease_field(lease_id)?;
        let name = self.director.lease_holder(lease_id).ok_or_else(|| {
            Status::not_found(format!("unknown lease {lease_id}: register again"))
        })?;
        self.director.access().realserver(caller, &name, None).map_err(|e| {
            tracing::warn!(target: "audit", %caller, action = "lease", target = %name, result = %e.message(), "audit: lease use refused");
            self.director.metrics().refused(e)
        })
    }

    async fn heartbeat_checked(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let caller = Caller::of(&request);
        let req = request.into_inner();
        self.lease_holder(&caller, &req.lease_id)?;
        let mut verdicts = BTreeMap::new();
        for (i, h) in req.health.iter().enumerate() {
            name_field(&format!("health[{i}].service"), &h.service)?;
            if h.reason.len() > MAX_REASON_BYTES {
                return Err(invalid(
                    &format!("health[{i}].reason"),
                    format!("is longer than {MAX_REASON_BYTES} bytes"),
                ));
            }
            let verdict = AgentVerdict {
                up: h.up,
                reason: h.reason.clone(),
            };
            if verdicts.insert(h.service.clone(), verdict).is_some() {
                return Err(invalid(
                    &format!("health[{i}].service"),
                    format!("{:?} is listed twice", h.service),
                ));
            }
        }
        let ttl = self.director.heartbeat(&req.lease_id, verdicts)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lease_ttl_ms: millis(ttl),
        }))
    }

    async fn register_checked(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let caller = Caller::of(&request);
        let req = request.into_inner();
        name_field("name", &req.name)?;
        let address: IpAddr = domain::parse_unicast(&req.address)
            .map_err(|p| invalid("address", format!("{:?} {p}", req.address)))?;
        if req.services.is_empty() {
            return Err(invalid("services", "at least one service is required"));
        }
        let mut weights = BTreeMap::new();
        for (i, s) in req.services.iter().enumerate() {
            name_field(&format!("services[{i}].service"), &s.service)?;
            let weight = weight_field(&format!("services[{i}].weight"), s.weight)?;
            if weights.insert(s.service.clone(), weight).is_some() {
                return Err(invalid(
                    &format!("services[{i}].service"),
                    format!("{:?} is listed twice", s.service),
                ));
            }
        }
        let access = self.director.access();
        let allowed = access
            .realserver(&caller, &req.name, Some(address))
            .and_then(|()| access.bound_to_connection(&req.name, address, caller.peer_ip()));
        if let Err(refused) = allowed {
            tracing::warn!(target: "audit", %caller, action = "register", target = %req.name, %address,
                result = %refused.message(), "audit: registration refused");
            return Err(self.director.metrics().refused(refused));
        }
        let registered = self.director.register(&req.name, address, weights);
        if let Err(error @ DirectorError::Registry(RegistryError::NameTaken { .. })) = &registered {
            // A second agent under a live name: a cloned realserver or a copied certificate.
            tracing::warn!(target: "audit", %caller, action = "register", target = %req.name, %address,
                result = %error, "audit: registration refused");
            self.director.metrics().count_refusal("name_taken");
        }
        let (lease, services) = registered?;
        Ok(Response::new(pb::RegisterResponse {
            lease_id: lease.id,
            lease_ttl_ms: millis(lease.ttl),
            bindings: services.iter().flat_map(bindings).collect(),
        }))
    }
}

/// What an agent needs for one service: a binding per VIP (one, except for a fwmark service).
fn bindings(s: &ServiceConfig) -> impl Iterator<Item = pb::ServiceBinding> + '_ {
    s.vips().iter().map(move |vip| pb::ServiceBinding {
        service: s.name.clone(),
        vip: vip.to_string(),
        port: u32::from(s.port()),
        protocol: s.protocol().map_or(0, |p| proto_protocol(p).into()),
        check: Some(pb::HealthCheck {
            r#type: s.check.kind.to_string(),
            interval_ms: millis(s.check.interval),
            timeout_ms: millis(s.check.timeout),
            fall: s.check.fall,
            rise: s.check.rise,
            port: s.check.port.map_or(0, u32::from),
        }),
        fwmark: s.fwmark().unwrap_or(0),
    })
}

/// One audit line per admin action: who, what, on whom, and how it ended.
fn audit<T>(caller: &Caller, action: &str, target: &str, peers: &str, result: &Result<T, Status>) {
    match result {
        Ok(_) if peers.is_empty() => {
            tracing::info!(target: "audit", %caller, action, target, result = "ok", "audit: admin action")
        }
        Ok(_) => {
            tracing::info!(target: "audit", %caller, action, target, result = "ok", peers, "audit: admin action")
        }
        Err(e) => {
            tracing::warn!(target: "audit", %caller, action, target, result = %e.message(), "audit: admin action refused")
        }
    }
}

#[tonic::async_trait]
impl pb::registry_server::Registry for RegistryService {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let outcome = self.register_checked(request).await;
        self.director.metrics().registration(&outcome);
        outcome
    }

    async fn confirm(
        &self,
        request: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::ConfirmResponse>, Status> {
        let caller = Caller::of(&request);
        let req = request.into_inner();
        self.lease_holder(&caller, &req.lease_id)?;
        self.director.confirm(&req.lease_id).await?;
        Ok(Response::new(pb::ConfirmResponse {}))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let outcome = self.heartbeat_checked(request).await;
        self.director.metrics().heartbeat(&outcome);
        outcome
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let caller = Caller::of(&request);
        let req = request.into_inner();
        self.lease_holder(&caller, &req.lease_id)?;
        self.director.deregister(&req.lease_id).await?;
        Ok(Response::new(pb::DeregisterResponse {}))
    }
}

pub struct AdminService {
    director: Arc<Director>,
    /// A drain watch ends when the director stops, so it never holds up the stop.
    shutdown: CancellationToken,
}

impl AdminService {
    pub fn new(director: Arc<Director>, shutdown: CancellationToken) -> Self {
        AdminService { director, shutdown }
    }
}

/// A drain watch reports at least this often, so a client sees it is alive.
const WATCH_REPORT_EVERY: Duration = Duration::from_secs(5);

type AdminFuture<'a> = Pin<
    Box<
        dyn std::future::Future<Output = Result<(String, crate::state::AdminRecord), DirectorError>>
            + Send
            + 'a,
    >,
>;

impl AdminService {
    /// Checks the caller, then the arguments, then runs an admin action, and writes its audit
    /// line whatever the outcome.
    async fn admin(
        &self,
        caller: &Caller,
        verb: &str,
        name: &str,
        weight: Option<u32>,
        action: impl for<'a> FnOnce(&'a Director, &'a str) -> AdminFuture<'a>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let result = async {
            self.director
                .access()
                .admin(caller)
                .map_err(|e| self.director.metrics().refused(e))?;
            name_field("name", name)?;
            if let Some(weight) = weight {
                weight_field("weight", weight)?;
            }
            let (message, record) = action(&self.director, name).await?;
            // The change holds here already; the peers get it now, or at their next exchange.
            let pushed = crate::peers::sync::push(&self.director, record).await;
            let note = pushed.note();
            let message = if note.is_empty() {
                message
            } else {
                format!("{message}; {note}")
            };
            Ok((
                Response::new(pb::AdminResponse {
                    message,
                    peers_confirmed: pushed.confirmed.clone(),
                    peers_pending: pushed.pending.iter().map(|(p, _)| p.clone()).collect(),
                }),
                note,
            ))
        }
        .await;
        let what = match weight {
            Some(w) => format!("{verb} {w}"),
            None => verb.to_owned(),
        };
        let peers = match &result {
            Ok((_, note)) => note.clone(),
            Err(_) => String::new(),
        };
        let result = result.map(|(response, _)| response);
        audit(caller, &what, name, &peers, &result);
        result
    }
}

type DrainStream = Pin<Box<dyn Stream<Item = Result<pb::DrainProgress, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(status(&self.director)))
    }

    async fn drain(
        &self,
        request: Request<pb::DrainRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let caller = Caller::of(&request);
        let name = request.into_inner().name;
        self.admin(&caller, "drain", &name, None, |d, n| Box::pin(d.drain(n)))
            .await
    }

    async fn undrain(
        &self,
        request: Request<pb::UndrainRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let caller = Caller::of(&request);
        let name = request.into_inner().name;
        self.admin(&caller, "undrain", &name, None, |d, n| {
            Box::pin(d.undrain(n))
        })
        .await
    }

    async fn set_weight(
        &self,
        request: Request<pb::SetWeightRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let caller = Caller::of(&request);
        let req = request.into_inner();
        let weight = req.weight;
        self.admin(&caller, "weight", &req.name, Some(weight), move |d, n| {
            Box::pin(d.set_weight(n, weight))
        })
        .await
    }

    type WatchDrainStream = DrainStream;

    async fn watch_drain(
        &self,
        request: Request<pb::WatchDrainRequest>,
    ) -> Result<Response<DrainStream>, Status> {
        let name = request.into_inner().name;
        name_field("name", &name)?;
        self.director.known(&name)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let director = self.director.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            // Each pass publishes a new snapshot: report when the counts change, and now and
            // then anyway so the client sees the watch is alive. The first report comes from a
            // pass of its own, so a snapshot older than the drain cannot end the watch early.
            let mut passes = director.passes().subscribe();
            tokio::select! {
                _ = director.pass() => {}
                () = shutdown.cancelled() => return,
            }
            let mut last = None;
            let mut next_report = tokio::time::Instant::now();
            loop {
                let progress = connections_of(&director, &name);
                let done = progress.active_conn == 0;
                if last.as_ref() != Some(&progress)
                    || done
                    || tokio::time::Instant::now() >= next_report
                {
                    // A send fails once the client hung up: stop watching then.
                    if tx.send(Ok(progress)).await.is_err() || done {
                        return;
                    }
                    last = Some(progress);
                    next_report = tokio::time::Instant::now() + WATCH_REPORT_EVERY;
                }
                tokio::select! {
                    () = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("the director is stopping; watch again once it is back"))).await;
                        return;
                    }
                    changed = passes.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep_until(next_report) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
