//! Fuzz target: `fc_protocol::route` (which service a raw request is for, from the SigV4
//! scope, `X-Amz-Target`, paths, `Action`/`Version` and Host), then the whole parse pipeline
//! on the model it picked. The selector bytes of `common/mod.rs` are read and ignored (so
//! seeds are shared with the other targets); the request is always used as given.

#![no_main]

mod common;

use common::{exercise, split, RawRequest};
use fc_protocol::route::{credential_scope, route};
use fc_protocol::service_model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, text) = split(data);
    let req = RawRequest::parse(text).to_http();
    let _ = credential_scope(&req);
    if let Some(r) = route(&req) {
        if let Some(model) = service_model(r.service) {
            exercise(model, &req, None);
        }
    }
});
