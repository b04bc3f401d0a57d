//! Fuzz target: smithy-rpc-v2-cbor bodies against the real cloudwatch model and the botocore
//! `smithy-rpc-v2-cbor*` test-vector models. Input layout: see `common/mod.rs`; without the
//! raw flag the path `/service/<prefix>/operation/<op>` and the CBOR headers are set.

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
            &["cloudwatch"],
            &[
                common::CBOR_VECTORS,
                common::CBOR_QC_VECTORS,
                common::CBOR_NQC_VECTORS,
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
            raw.uri = format!("/service/{prefix}/operation/{}", op.name);
        }
        raw.method = "POST".to_string();
        raw.set_header("smithy-protocol", "rpc-v2-cbor");
        raw.default_header("Content-Type", "application/cbor");
    }
    exercise(model, &raw.to_http(), Some(Protocol::RpcV2Cbor));
});
