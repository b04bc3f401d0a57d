//! Fuzz target: awsQuery and ec2Query form requests (body and query string) against the real
//! sts, iam and ec2 models and the botocore `query`/`ec2` test-vector models.
//! Input layout: see `common/mod.rs`.

#![no_main]

mod common;

use common::{exercise, load_models, pick_model, pick_operation, split, RawRequest};
use fc_protocol::{Protocol, ServiceModel};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn models() -> &'static [&'static ServiceModel] {
    static MODELS: OnceLock<Vec<&'static ServiceModel>> = OnceLock::new();
    MODELS.get_or_init(|| {
        load_models(
            &["sts", "iam", "ec2"],
            &[common::QUERY_VECTORS, common::EC2_VECTORS],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (sel, text) = split(data);
    let model = pick_model(models(), &sel);
    let mut raw = RawRequest::parse(text);
    let intended = if model.metadata.protocol == "ec2" {
        Protocol::Ec2
    } else {
        Protocol::Query
    };
    if !sel.raw() {
        if let Some(op) = pick_operation(model, &sel) {
            // The chosen operation first: a later Action in the fuzzed body does not win.
            let mut body =
                format!("Action={}&Version={}&", op.name, model.metadata.api_version).into_bytes();
            body.extend_from_slice(&raw.body);
            raw.body = body;
        }
        raw.method = "POST".to_string();
        raw.default_header("Content-Type", "application/x-www-form-urlencoded");
    }
    exercise(model, &raw.to_http(), Some(intended));
});
