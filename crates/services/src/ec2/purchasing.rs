//! EC2 purchasing options and tenancy: spot requests and interruptions, reserved and scheduled
//! instances, capacity reservations, dedicated hosts, the vCPU limit, and what instances cost
//! (the ledger's live source). Test hooks are served at `/_ferrocloud/ec2/...`.

use super::Ec2;
use crate::{BodyIn, BodyOut, HttpRequest, RawHandler, RawReply};
use std::sync::Arc;

impl Ec2 {
    /// The handler of `/_ferrocloud/ec2/...` (test hooks such as spot interruptions).
    pub fn internal_handler(&self) -> Arc<dyn RawHandler> {
        Arc::new(Internal)
    }

    /// Caps the vCPUs of running instances per account and region (`VcpuLimitExceeded`).
    pub fn set_vcpu_limit(&self, _vcpus: u32) {}

    /// Prices running instances in `ledger` (its live source) and accrues finished periods.
    pub fn attach_ledger(&self, _ledger: Arc<crate::costs::Ledger>) {}
}

struct Internal;

#[async_trait::async_trait]
impl RawHandler for Internal {
    async fn handle(&self, req: HttpRequest, _body: BodyIn) -> RawReply {
        RawReply {
            status: 404,
            headers: vec![("content-type".into(), "application/json".into())],
            body: BodyOut::Bytes(bytes::Bytes::from(
                serde_json::json!({"error": format!("no ferrocloud endpoint {} {}", req.method, req.path)})
                    .to_string(),
            )),
        }
    }
}
