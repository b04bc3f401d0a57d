//! The AWS services: one module per service family. Handlers take the operation input as a
//! model-shaped value (see `fc_protocol::value`), usually deserialized into a typed struct, and
//! return an output value or an [`ApiError`]. Handlers never see HTTP.
//!
//! Must not live here: wire formats (fc-protocol), signature checks (fc-auth), storage engines
//! (fc-store), the HTTP server (the binary).

// ApiError is a plain value carried once per request; boxing it buys nothing measurable.
#![allow(clippy::result_large_err)]

pub mod bus;
pub mod common;
pub mod costs;
pub mod ec2;
pub mod ecr;
pub mod iam;
pub mod identity;
pub mod logs;
pub mod s3;
pub mod sqs;
pub mod sts;

use async_trait::async_trait;
pub use fc_protocol::{ApiError, BodyIn, BodyOut, HttpRequest};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `arn:aws:iam::123456789012:root`, `…:user/name`, `arn:aws:sts::…:assumed-role/R/session`.
    pub arn: String,
    /// `UserId` as `GetCallerIdentity` reports it (the account id for root, `AIDA…` for users,
    /// `AROA…:session` for assumed roles).
    pub user_id: String,
}

/// Everything a handler knows about the request besides its input.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub account: String,
    pub region: String,
    /// ferrocloud's service name (`iam`, `logs`, ...).
    pub service: String,
    pub operation: String,
    /// Access key id the request was signed with, if any.
    pub access_key: Option<String>,
    pub principal: Principal,
    /// The base URL clients used to reach ferrocloud (`http://localhost:4566`).
    pub endpoint: String,
}

impl RequestContext {
    /// A context for tests and internal calls: root of `account` in `region`.
    pub fn for_account(account: &str, region: &str, service: &str, operation: &str) -> Self {
        RequestContext {
            request_id: fc_types::ids::request_id(),
            account: account.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            operation: operation.to_string(),
            access_key: None,
            principal: Principal {
                arn: format!("arn:aws:iam::{account}:root"),
                user_id: account.to_string(),
            },
            endpoint: "http://localhost:4566".to_string(),
        }
    }
}

/// One AWS service.
#[async_trait]
pub trait Service: Send + Sync {
    /// ferrocloud's name, also the `models/` directory of its API model.
    fn name(&self) -> &'static str;
    /// Run an operation. An operation of the model that is not implemented answers
    /// [`ApiError::not_implemented`].
    async fn call(&self, ctx: &RequestContext, input: Value) -> Result<Value, ApiError>;

    /// Run an operation whose payload streams (`fc_protocol::streams_input` or
    /// `streams_output`): the request body arrives beside the value and the response body may
    /// be returned beside the output. Services without such operations keep this default.
    async fn call_stream(
        &self,
        ctx: &RequestContext,
        input: Value,
        body: BodyIn,
    ) -> Result<Reply, ApiError> {
        drop(body);
        Ok(Reply {
            value: self.call(ctx, input).await?,
            body: None,
        })
    }
}

/// The output of a streaming operation.
#[derive(Debug)]
pub struct Reply {
    pub value: Value,
    pub body: Option<BodyOut>,
}

/// A raw HTTP response from a data plane that is not an AWS API (the OCI registry).
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BodyOut,
}

/// A data plane served on the main endpoint under its own path (the OCI registry at `/v2/`).
/// `req.body` is empty: the body arrives as `body`.
#[async_trait]
pub trait RawHandler: Send + Sync {
    async fn handle(&self, req: HttpRequest, body: BodyIn) -> RawReply;
}

/// The services the server dispatches to, by name.
#[derive(Clone, Default)]
pub struct Registry {
    services: HashMap<&'static str, Arc<dyn Service>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, s: Arc<dyn Service>) {
        self.services.insert(s.name(), s);
    }
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Service>> {
        self.services.get(name)
    }
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.services.keys().copied().collect();
        v.sort_unstable();
        v
    }
}
