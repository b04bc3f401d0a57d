//! Shared resource machinery with no I/O: resource ids in AWS formats, ARNs, `*`/`?`
//! wildcards, EC2-style filters, opaque tamper-checked pagination tokens, tags.
//!
//! Must not live here: wire formats (the protocol crate), state, or any one service's rules.

pub mod arn;
pub mod filter;
pub mod ids;
pub mod page;
pub mod tags;
pub mod wildcard;

pub use arn::Arn;
pub use filter::Filter;
pub use wildcard::wildcard_match;
