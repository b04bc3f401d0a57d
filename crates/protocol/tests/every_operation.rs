//! Every operation of every vendored model is reachable: a request shaped the way the SDKs
//! shape it (signed for the service's signing name, `X-Amz-Target`, `Action`+`Version`, the
//! rpc-v2-cbor path or the REST method and URI) routes to the right service, resolves to that
//! operation (or, for REST, to one bound to the same method and URI template), and parses to a
//! value or an AWS-shaped 4xx — never a panic.

use bytes::Bytes;
use fc_protocol::model::SERVICES;
use fc_protocol::{route, service_model, HttpRequest, Operation, Protocol, ServiceModel};

fn signing_name(m: &ServiceModel) -> String {
    m.metadata
        .signing_name
        .clone()
        .or(m.metadata.endpoint_prefix.clone())
        .unwrap_or_default()
}

/// Fill a REST `requestUri` template with sample label values; literal query parts stay.
fn fill_uri(template: &str) -> (String, String) {
    let (path, query) = match template.split_once('?') {
        Some((p, q)) => (p, q.to_string()),
        None => (template, String::new()),
    };
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let label = &rest[start + 1..start + end];
        out.push_str(if label.ends_with('+') {
            "sample/key"
        } else {
            "sample"
        });
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    (out, query)
}

fn request_for(m: &ServiceModel, protocol: Protocol, op: &Operation) -> HttpRequest {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/{}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        signing_name(m)
    );
    let mut headers = vec![
        ("Authorization".to_string(), auth),
        ("Host".to_string(), "localhost:4566".to_string()),
    ];
    match protocol {
        Protocol::Query | Protocol::Ec2 => {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ));
            let body = format!("Action={}&Version={}", op.name, m.metadata.api_version);
            HttpRequest::from_uri("POST", "/", headers, Bytes::from(body))
        }
        Protocol::Json => {
            let version = m.metadata.json_version.as_deref().unwrap_or("1.0");
            headers.push((
                "Content-Type".into(),
                format!("application/x-amz-json-{version}"),
            ));
            let prefix = m.metadata.target_prefix.clone().unwrap_or_default();
            headers.push(("X-Amz-Target".into(), format!("{prefix}.{}", op.name)));
            HttpRequest::from_uri("POST", "/", headers, Bytes::from_static(b"{}"))
        }
        Protocol::RpcV2Cbor => {
            headers.push(("Content-Type".into(), "application/cbor".into()));
            headers.push(("smithy-protocol".into(), "rpc-v2-cbor".into()));
            let prefix = m.metadata.target_prefix.clone().unwrap_or_default();
            let uri = format!("/service/{prefix}/operation/{}", op.name);
            // An empty CBOR map.
            HttpRequest::from_uri("POST", &uri, headers, Bytes::from_static(&[0xa0]))
        }
        Protocol::RestJson | Protocol::RestXml => {
            let (path, query) = fill_uri(&op.http.request_uri);
            let uri = if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            };
            HttpRequest::from_uri(&op.http.method, &uri, headers, Bytes::new())
        }
    }
}

#[test]
fn every_operation_routes_resolves_and_parses() {
    let mut total = 0;
    let mut failures = Vec::new();
    for (name, _) in SERVICES {
        let m = service_model(name).expect("vendored model");
        let mut protocols =
            vec![Protocol::from_name(&m.metadata.protocol).expect("known protocol")];
        for p in &m.metadata.protocols {
            if let Some(p) = Protocol::from_name(p) {
                if !protocols.contains(&p) {
                    protocols.push(p);
                }
            }
        }
        for protocol in protocols {
            for op in m.operations.values() {
                total += 1;
                let req = request_for(m, protocol, op);
                let routed = route::route(&req).map(|r| r.service);
                // elb and elbv2 share a signing name: the form's Version decides.
                if routed != Some(*name) {
                    failures.push(format!(
                        "{name}:{} ({protocol:?}) routed to {routed:?}",
                        op.name
                    ));
                    continue;
                }
                if fc_protocol::detect_protocol(m, &req) != protocol {
                    failures.push(format!(
                        "{name}:{} detected as another protocol than {protocol:?}",
                        op.name
                    ));
                    continue;
                }
                let resolved = match fc_protocol::resolve_operation(m, protocol, &req) {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{name}:{} ({protocol:?}) unresolved: {e}", op.name));
                        continue;
                    }
                };
                let same_binding = resolved.http.method == op.http.method
                    && resolved.http.request_uri.split('?').next()
                        == op.http.request_uri.split('?').next();
                if resolved.name != op.name && !same_binding {
                    failures.push(format!(
                        "{name}:{} ({protocol:?}) resolved to {}",
                        op.name, resolved.name
                    ));
                    continue;
                }
                if let Err(e) = fc_protocol::parse_request(m, protocol, resolved, &req) {
                    if !(400..500).contains(&e.status) {
                        failures.push(format!("{name}:{} ({protocol:?}) parse gave {e}", op.name));
                    }
                }
            }
        }
    }
    println!(
        "{total} operation/protocol pairs checked, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
