//! The `Peer` gRPC service: what another director calls to push its records and pull ours.
//! Only a configured `[[peer]]` may call it (access.rs); every record is checked before any
//! is merged; a merged change is on disk before the call returns, like an operator's drain.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::info;

use lb_proto as pb;

use super::wire::{records_from_proto, to_proto};
use super::PAGE;
use crate::access::Caller;
use crate::director::Director;

pub struct PeerService {
    director: Arc<Director>,
}

impl PeerService {
    pub fn new(director: Arc<Director>) -> Self {
        PeerService { director }
    }

    fn allowed<T>(&self, request: &Request<T>, action: &str) -> Result<Caller, Status> {
        let caller = Caller::of(request);
        self.director.access().peer(&caller).map_err(|refused| {
            tracing::warn!(target: "audit", %caller, action, result = %refused.message(), "audit: peer call refused");
            self.director.metrics().refused(refused)
        })?;
        Ok(caller)
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn push(
        &self,
        request: Request<pb::PeerPushRequest>,
    ) -> Result<Response<pb::PeerPushResponse>, Status> {
        let caller = self.allowed(&request, "peer push")?;
        let req = request.into_inner();
        if req.records.len() > PAGE {
            return Err(Status::invalid_argument(format!(
                "records: {} in one push, at most {PAGE}",
                req.records.len()
            )));
        }
        let records = records_from_proto(&req.records).map_err(Status::invalid_argument)?;
        let changed = self.director.merge_admin(&records).await?;
        if !changed.is_empty() {
            info!(target: "audit", %caller, action = "peer push", taken = ?changed, result = "ok", "audit: admin state taken from a peer");
        }
        Ok(Response::new(pb::PeerPushResponse {
            taken: u32::try_from(changed.len()).unwrap_or(u32::MAX),
        }))
    }

    async fn pull(
        &self,
        request: Request<pb::PeerPullRequest>,
    ) -> Result<Response<pb::PeerPullResponse>, Status> {
        self.allowed(&request, "peer pull")?;
        let req = request.into_inner();
        let limit = match usize::try_from(req.limit) {
            Ok(0) | Err(_) => PAGE,
            Ok(n) => n.min(PAGE),
        };
        let state = self.director.state();
        let mut records = state
            .admin_records()
            .into_iter()
            .filter(|r| r.realserver > req.after);
        let page: Vec<pb::AdminRecord> =
            records.by_ref().take(limit).map(|r| to_proto(&r)).collect();
        let more = records.next().is_some();
        Ok(Response::new(pb::PeerPullResponse {
            records: page,
            more,
        }))
    }
}
