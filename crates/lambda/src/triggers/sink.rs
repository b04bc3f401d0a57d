//! The bus's `FunctionSink`: how other services (S3 event notifications) find functions, ask
//! their resource policy, and queue asynchronous invocations.

use super::{asyncq, block_on, parse_function_arn, policy};
use crate::Inner;
use fc_protocol::ApiError;
use fc_store::Scope;
use std::sync::{Arc, Weak};

pub(crate) struct Sink {
    inner: Weak<Inner>,
}

impl Sink {
    pub fn new(inner: &Arc<Inner>) -> Sink {
        // Weak: the bus lives in `Inner`'s deps; a strong reference would be a cycle.
        Sink {
            inner: Arc::downgrade(inner),
        }
    }
}

impl fc_services::bus::FunctionSink for Sink {
    fn function_exists(&self, function_arn: &str) -> bool {
        let (Some(inner), Some((account, region, name, qualifier))) =
            (self.inner.upgrade(), parse_function_arn(function_arn))
        else {
            return false;
        };
        let found = block_on(async move {
            inner
                .resolve(&account, &region, &name, qualifier.as_deref())
                .await
                .is_ok()
        });
        found.unwrap_or(false)
    }

    fn allows(&self, function_arn: &str, principal: &str, source_arn: &str) -> bool {
        let (Some(inner), Some((account, region, name, qualifier))) =
            (self.inner.upgrade(), parse_function_arn(function_arn))
        else {
            return false;
        };
        // S3 does not say who owns the bucket; within ferrocloud it is the function's account.
        let req = policy::service_request(
            principal,
            "lambda:InvokeFunction",
            function_arn,
            source_arn,
            &account,
        );
        policy::allows(
            inner.deps.store.as_ref(),
            &Scope::new(&account, &region),
            &name,
            qualifier.as_deref(),
            &req,
        )
    }

    fn invoke_async(&self, function_arn: &str, payload: &str) -> Result<(), ApiError> {
        let inner = self
            .inner
            .upgrade()
            .ok_or_else(|| ApiError::new(503, "ServiceException", "Lambda is shutting down"))?;
        asyncq::enqueue_arn(&inner, function_arn, payload.as_bytes())
    }
}
