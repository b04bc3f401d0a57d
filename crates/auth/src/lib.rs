//! fc-auth: AWS Signature Version 4 verification (`sigv4`) and IAM policy evaluation
//! (`policy`, with condition operators in `condition`).
//!
//! Pure logic: no I/O and no storage. Credentials are looked up by the caller: it calls
//! `parse` to learn the access key id, finds that key's secret (and session) itself, calls
//! `verify`, and later authorizes the call with `evaluate` over the caller's policies.

pub mod condition;
pub mod error;
pub mod policy;
pub mod sigv2;
pub mod sigv4;

pub use condition::{BaseOperator, Condition, Operator, SetQualifier};
pub use error::{AuthError, AuthErrorCode};
pub use policy::{
    action_matches, evaluate, evaluate_set, principal_matches, resource_matches, statement_applies,
    AuthzRequest, Decision, Effect, Policy, PolicyError, PolicyKind, PolicySet, Principals,
    Statement,
};
pub use sigv4::{parse, verify, ChunkVerifier, Credentials, Payload, SignedRequest};
