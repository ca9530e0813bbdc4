//! The standard gRPC services beside Registry and Admin, so tools that know nothing of lb work:
//! `grpc.health.v1.Health` (grpc_health_probe, Kubernetes gRPC probes, keepalived track
//! scripts) and server reflection v1 and v1alpha (grpcurl; older clients speak only v1alpha).
//!
//! Health is computed from the reconciler's last outcome and the stop token at each call, so
//! it can never lag behind what it reports on:
//! - SERVING once the first reconcile is done and the last pass read and wrote the IPVS table;
//! - NOT_SERVING while that last pass failed (the kernel refused the dump or the batch; the
//!   reconciler retries with backoff and the status stays until a pass succeeds), after the
//!   reconciler ended, and from the moment a stop begins (the stop token is cancelled before the
//!   servers start closing, so a `Watch` sees NOT_SERVING and then its stream ends).
//!
//! Single operations the kernel refuses in an otherwise good pass (logged and retried) and a
//! VIP that could not be set up do not turn the director NOT_SERVING: the table is still read
//! and kept; `lbctl status` and the log say what is wrong.
//!
//! Neither service needs an admin identity. On the TCP port with `[tls]` every connection has
//! already shown a certificate of the cluster CA (the acceptor refuses any other), so only
//! cluster members reach them; the admin socket is root's. Health tells one word per service;
//! reflection tells the schema of `lb.proto`, which ships with the product and holds no
//! addresses, names or keys. The access rules of Registry and Admin stay in their handlers,
//! per call ([`crate::access`]), untouched by serving more services on the same port.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use lb_proto as pb;

use crate::director::Director;
use crate::reconciler::PassOutcome;

/// Largest request the standard services accept: a service name or a symbol to look up.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The names `Check` and `Watch` know: the whole server ("") and each of our services. They
/// share one status, since both stand or fall with the reconciler.
pub const HEALTH_NAMES: [&str; 3] = [
    "",
    pb::registry_server::SERVICE_NAME,
    pb::admin_server::SERVICE_NAME,
];

/// The status of the whole director, from the reconciler's last outcome and whether a stop
/// has begun.
pub fn serving_status(last: &PassOutcome, stopping: bool) -> ServingStatus {
    let first_pass_done = last.snapshot.taken.is_some();
    if !stopping && first_pass_done && last.result.is_ok() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// `grpc.health.v1.Health` over the director's state.
pub struct DirectorHealth {
    director: Arc<Director>,
    shutdown: CancellationToken,
}

impl DirectorHealth {
    pub fn new(director: Arc<Director>, shutdown: CancellationToken) -> Self {
        DirectorHealth { director, shutdown }
    }

    fn status_of(&self, service: &str) -> Option<ServingStatus> {
        HEALTH_NAMES.contains(&service).then(|| {
            serving_status(
                &self.director.passes().latest(),
                self.shutdown.is_cancelled(),
            )
        })
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for DirectorHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.status_of(&service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!(
                "unknown service {service:?}: this director reports on \"\" (the whole director), {} and {}",
                HEALTH_NAMES[1], HEALTH_NAMES[2]
            ))),
        }
    }

    type WatchStream = WatchStream;

    /// Sends the status now and at every change; ends after NOT_SERVING once a stop begins, so
    /// an open watch never holds the stop up. An unknown name gets SERVICE_UNKNOWN once and
    /// stays open, as the health protocol says.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let service = request.into_inner().service;
        let watching = Watching {
            shutdown: self.shutdown.clone(),
            passes: self.director.passes().subscribe(),
            known: HEALTH_NAMES.contains(&service.as_str()),
            last: None,
        };
        let stream = futures::stream::unfold(watching, |mut w| async move {
            let status = w.next().await?;
            Some((Ok(response(status)), w))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

struct Watching {
    shutdown: CancellationToken,
    passes: watch::Receiver<PassOutcome>,
    known: bool,
    last: Option<ServingStatus>,
}

impl Watching {
    /// The next status to send, None when the watch is over.
    async fn next(&mut self) -> Option<ServingStatus> {
        loop {
            let stopping = self.shutdown.is_cancelled();
            let now = if self.known {
                serving_status(&self.passes.borrow_and_update(), stopping)
            } else {
                ServingStatus::ServiceUnknown
            };
            if self.last != Some(now) {
                self.last = Some(now);
                return Some(now);
            }
            if stopping {
                return None;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {}
                changed = self.passes.changed() => {
                    if changed.is_err() {
                        // The director (and its sender) went away: nothing changes any more.
                        self.shutdown.cancelled().await;
                    }
                }
            }
        }
    }
}

/// The health service, with small messages like every other service here.
pub fn health_server(
    director: Arc<Director>,
    shutdown: CancellationToken,
) -> HealthServer<DirectorHealth> {
    HealthServer::new(DirectorHealth::new(director, shutdown))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// Adds health and both reflection versions to a server that already has our services.
pub fn add_standard_services(
    router: tonic::transport::server::Router,
    director: &Arc<Director>,
    shutdown: &CancellationToken,
) -> Result<tonic::transport::server::Router, tonic_reflection::server::Error> {
    let v1 = reflection().build_v1()?;
    let v1alpha = reflection().build_v1alpha()?;
    Ok(router
        .add_service(health_server(director.clone(), shutdown.clone()))
        .add_service(v1.max_decoding_message_size(MAX_MESSAGE_BYTES))
        .add_service(v1alpha.max_decoding_message_size(MAX_MESSAGE_BYTES)))
}

/// What reflection describes: lb.proto and the health protocol (the reflection service adds
/// its own).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconciler::{PassError, PassReport, Snapshot};

    fn outcome(first_pass_done: bool, result: Result<PassReport, PassError>) -> PassOutcome {
        PassOutcome {
            covers: 1,
            result,
            snapshot: Arc::new(Snapshot {
                taken: first_pass_done.then(tokio::time::Instant::now),
                ..Snapshot::default()
            }),
        }
    }

    #[test]
    fn serving_only_after_a_good_first_pass_and_until_the_stop() {
        let ok = || Ok(PassReport::default());
        let read = || Err(PassError::Read("netlink: EPERM".into()));
        let refused_ops = || {
            Ok(PassReport {
                applied: 3,
                failed: 1,
            })
        };
        let gone = || Err(PassError::Stopped);
        use ServingStatus::{NotServing, Serving};
        #[rustfmt::skip]
        let table = [
            ("before the first pass", outcome(false, ok()),         false, NotServing),
            ("after a good pass",     outcome(true, ok()),          false, Serving),
            ("some ops refused",      outcome(true, refused_ops()), false, Serving),
            ("last read failed",      outcome(true, read()),        false, NotServing),
            ("reconciler gone",       outcome(true, gone()),        false, NotServing),
            ("stopping",              outcome(true, ok()),          true,  NotServing),
        ];
        for (what, last, stopping, expected) in table {
            assert_eq!(serving_status(&last, stopping), expected, "{what}");
        }
    }

    #[test]
    fn the_descriptor_sets_build_both_reflection_versions() {
        reflection().build_v1().unwrap();
        reflection().build_v1alpha().unwrap();
    }
}
