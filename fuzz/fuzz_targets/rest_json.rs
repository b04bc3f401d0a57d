//! Fuzz target: rest-json requests (URI labels, query string, headers, JSON payloads) against
//! the real lambda model and the botocore `rest-json` test-vector models.
//! Input layout: see `common/mod.rs`; without the raw flag the chosen operation's method and
//! `requestUri` are used, its labels filled from the input's path segments.

#![no_main]

mod common;

use common::{exercise, fill_template, load_models, pick_model, pick_operation, split, RawRequest};
use fc_protocol::{Protocol, ServiceModel};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn models() -> &'static [&'static ServiceModel] {
    static MODELS: OnceLock<Vec<&'static ServiceModel>> = OnceLock::new();
    MODELS.get_or_init(|| load_models(&["lambda"], &[common::REST_JSON_VECTORS]))
}

fuzz_target!(|data: &[u8]| {
    let (sel, text) = split(data);
    let model = pick_model(models(), &sel);
    let mut raw = RawRequest::parse(text);
    if !sel.raw() {
        if let Some(op) = pick_operation(model, &sel) {
            raw.uri = fill_template(&op.http.request_uri, raw.path(), raw.query());
            raw.method = op.http.method.clone();
        }
    }
    exercise(model, &raw.to_http(), Some(Protocol::RestJson));
});
