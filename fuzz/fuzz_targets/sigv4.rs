//! Fuzz target: fc-auth's SigV4 reading (`Authorization` header and presigned query forms),
//! verification against a fixed secret, and the `aws-chunked` chunk-signature chain.
//! Input layout: see `common/mod.rs`; flag bit 1 hands the payload over as a hash instead of
//! bytes, bit 2 checks the time against the request's own clock (so verification goes on to
//! the signature) instead of a fixed instant.

#![no_main]

mod common;

use common::{split, RawRequest};
use fc_auth::sigv4::{parse, verify, ChunkVerifier, Payload, SignedRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sel, text) = split(data);
    let raw = RawRequest::parse(text);
    let hash = String::from_utf8_lossy(&raw.body).into_owned();
    let payload = if sel.flags & 2 == 2 {
        Payload::Sha256Hex(&hash)
    } else {
        Payload::Bytes(&raw.body)
    };
    let req = SignedRequest {
        method: &raw.method,
        path: raw.path(),
        query: raw.query(),
        headers: &raw.headers,
        payload,
    };
    let Ok(Some(creds)) = parse(&req) else {
        return;
    };
    let _ = creds.scope();
    let fixed = time::OffsetDateTime::from_unix_timestamp(1_700_000_000)
        .expect("a constant timestamp in range");
    let now = if sel.flags & 4 == 4 {
        creds.request_time().unwrap_or(fixed)
    } else {
        fixed
    };
    let _ = verify(
        &creds,
        &req,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        now,
    );
    let mut chunks = ChunkVerifier::new(&creds, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let _ = chunks.expected(&raw.body);
    let _ = chunks.verify_next(&raw.body, &creds.signature);
});
