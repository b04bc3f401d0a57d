//! Fuzz target: awsJson 1.0/1.1 bodies (`X-Amz-Target`) against the real logs and ecs models
//! and the botocore `json`/`json_1_0` test-vector models. Input layout: see `common/mod.rs`.

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
            &["logs", "ecs"],
            &[
                common::JSON_VECTORS,
                common::JSON10_VECTORS,
                common::JSON10_QC_VECTORS,
            ],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (sel, text) = split(data);
    let model = pick_model(models(), &sel);
    let mut raw = RawRequest::parse(text);
    if !sel.raw() {
        if let Some(op) = pick_operation(model, &sel) {
            let prefix = model.metadata.target_prefix.as_deref().unwrap_or("Service");
            raw.set_header("X-Amz-Target", &format!("{prefix}.{}", op.name));
        }
        let version = model.metadata.json_version.as_deref().unwrap_or("1.0");
        raw.default_header("Content-Type", &format!("application/x-amz-json-{version}"));
        raw.method = "POST".to_string();
    }
    exercise(model, &raw.to_http(), Some(Protocol::Json));
});
