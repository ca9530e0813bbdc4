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

use lb_ipvs::IpvsBackend;
use lb_proto as pb;
use lb_shared::domain::{self, Protocol};

use crate::access::{Access, Caller};
use crate::control::{ControlError, Director};
use crate::registry::RegistryError;
use crate::status::status;

impl From<ControlError> for Status {
    fn from(error: ControlError) -> Status {
        let message = error.to_string();
        match error {
            ControlError::Registry(RegistryError::NameTaken { .. })
            | ControlError::Registry(RegistryError::AddressTaken { .. }) => {
                Status::already_exists(message)
            }
            ControlError::Registry(RegistryError::UnknownLease(_)) => Status::not_found(message),
            ControlError::Registry(RegistryError::Full) => Status::resource_exhausted(message),
            ControlError::UnknownService { .. } | ControlError::UnknownRealServer(_) => {
                Status::not_found(message)
            }
            ControlError::State(_) => Status::internal(message),
            ControlError::Ipvs(_) => Status::unavailable(message),
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

pub struct RegistryService<I> {
    director: Arc<Director<I>>,
    access: Arc<Access>,
}

impl<I: IpvsBackend> RegistryService<I> {
    pub fn new(director: Arc<Director<I>>, access: Arc<Access>) -> Self {
        RegistryService { director, access }
    }

    /// A lease may be used only by the realserver that holds it.
    fn lease_holder(&self, caller: &Caller, lease_id: &str) -> Result<(), Status> {
        lease_field(lease_id)?;
        let name = self.director.lease_holder(lease_id).ok_or_else(|| {
            Status::not_found(format!("unknown lease {lease_id}: register again"))
        })?;
        self.access.realserver(caller, &name, None).inspect_err(|e| {
            tracing::warn!(target: "audit", %caller, action = "lease", target = %name, result = %e.message(), "audit: lease use refused");
        })
    }
}

/// One audit line per admin action: who, what, on whom, and how it ended.
fn audit<T>(caller: &Caller, action: &str, target: &str, result: &Result<T, Status>) {
    match result {
        Ok(_) => {
            tracing::info!(target: "audit", %caller, action, target, result = "ok", "audit: admin action")
        }
        Err(e) => {
            tracing::warn!(target: "audit", %caller, action, target, result = %e.message(), "audit: admin action refused")
        }
    }
}

#[tonic::async_trait]
impl<I: IpvsBackend> pb::registry_server::Registry for RegistryService<I> {
    async fn register(
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
        if let Err(refused) = self.access.realserver(&caller, &req.name, Some(address)) {
            tracing::warn!(target: "audit", %caller, action = "register", target = %req.name, %address,
                result = %refused.message(), "audit: registration refused");
            return Err(refused);
        }
        let (lease, services) = self.director.register(&req.name, address, weights)?;
        Ok(Response::new(pb::RegisterResponse {
            lease_id: lease.id,
            lease_ttl_ms: millis(lease.ttl),
            bindings: services
                .into_iter()
                .map(|s| pb::ServiceBinding {
                    service: s.name.clone(),
                    vip: s.vip.to_string(),
                    port: u32::from(s.port),
                    protocol: proto_protocol(s.protocol).into(),
                })
                .collect(),
        }))
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
        let caller = Caller::of(&request);
        let req = request.into_inner();
        self.lease_holder(&caller, &req.lease_id)?;
        let ttl = self.director.heartbeat(&req.lease_id)?;
        Ok(Response::new(pb::HeartbeatResponse {
            lease_ttl_ms: millis(ttl),
        }))
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

pub struct AdminService<I> {
    director: Arc<Director<I>>,
    access: Arc<Access>,
    /// How often a drain watch samples the kernel's connection counts.
    watch_interval: Duration,
}

impl<I> AdminService<I> {
    pub fn new(director: Arc<Director<I>>, access: Arc<Access>) -> Self {
        AdminService {
            director,
            access,
            watch_interval: Duration::from_secs(1),
        }
    }
}

type AdminFuture<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<String, ControlError>> + Send + 'a>>;

impl<I: IpvsBackend> AdminService<I> {
    /// Checks the caller, then the arguments, then runs an admin action, and writes its audit
    /// line whatever the outcome.
    async fn admin(
        &self,
        caller: &Caller,
        verb: &str,
        name: &str,
        weight: Option<u32>,
        action: impl for<'a> FnOnce(&'a Director<I>, &'a str) -> AdminFuture<'a>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let result = async {
            self.access.admin(caller)?;
            name_field("name", name)?;
            if let Some(weight) = weight {
                weight_field("weight", weight)?;
            }
            let message = action(&self.director, name).await?;
            Ok(Response::new(pb::AdminResponse { message }))
        }
        .await;
        let what = match weight {
            Some(w) => format!("{verb} {w}"),
            None => verb.to_owned(),
        };
        audit(caller, &what, name, &result);
        result
    }
}

type DrainStream = Pin<Box<dyn Stream<Item = Result<pb::DrainProgress, Status>> + Send>>;

#[tonic::async_trait]
impl<I: IpvsBackend> pb::admin_server::Admin for AdminService<I> {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(status(&self.director).await?))
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
        self.director.check_known(&name)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let director = self.director.clone();
        let interval = self.watch_interval;
        tokio::spawn(async move {
            loop {
                let progress = connections_of(&director, &name).await;
                let done = matches!(progress, Ok(ref p) if p.active_conn == 0);
                // A send fails once the client hung up: stop watching then.
                if tx.send(progress.map_err(Status::from)).await.is_err() || done {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// ActiveConn and InActConn of a realserver summed over the director's services.
async fn connections_of<I: IpvsBackend>(
    director: &Director<I>,
    name: &str,
) -> Result<pb::DrainProgress, ControlError> {
    let addresses = director.addresses_of(name);
    let observed = director.observe().await?;
    let mut progress = pb::DrainProgress::default();
    for service in observed.services.values() {
        for entry in service.destinations.values() {
            if addresses.contains(&entry.destination.addr) {
                progress.active_conn += entry.active_conns;
                progress.inact_conn += entry.inactive_conns;
            }
        }
    }
    Ok(progress)
}
