//! rest-json and rest-xml responses: members bound to headers, prefix headers and the status
//! code go to the HTTP response; a `payload` member is the whole body; the rest form the JSON
//! object or the XML document.

use super::json::{self, JsonWriter};
use super::xml::{root_name, XmlOut, XmlWriter};
use super::{epoch_of, format_timestamp_text, scalar_text, timestamp_format, TsPlace};
use crate::model::{Shape, ShapeRef};
use crate::{HttpResponse, Operation, Protocol, ResponseContext, ServiceModel};
use base64::Engine;
use serde_json::{Map, Value};

/// The text of one header value for a scalar shape.
fn header_scalar(r: Option<&ShapeRef>, shape: &Shape, v: &Value) -> Option<String> {
    match shape.type_.as_str() {
        "timestamp" => {
            let secs = epoch_of(v)?;
            Some(format_timestamp_text(
                secs,
                &timestamp_format(r, shape, TsPlace::Header),
            ))
        }
        "string"
            if r.and_then(|r| r.json_value) == Some(true) || shape.json_value == Some(true) =>
        {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(base64::engine::general_purpose::STANDARD.encode(text))
        }
        "blob" => v.as_str().map(str::to_string),
        t => scalar_text(t, v),
    }
}

/// Quote a list item for a comma separated header when it needs it.
fn quote_item(s: &str) -> String {
    if s.contains(',') || s.contains('"') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

/// The value of a `location: header` member: scalars as text, lists comma separated.
pub(crate) fn header_value(model: &ServiceModel, r: &ShapeRef, v: &Value) -> Option<String> {
    let shape = model.shape(&r.shape)?;
    if shape.type_ == "list" {
        let mref = shape.member.as_deref()?;
        let mshape = model.shape(&mref.shape)?;
        let items: Vec<String> = v
            .as_array()?
            .iter()
            .filter_map(|i| header_scalar(Some(mref), mshape, i))
            .map(|s| {
                if mshape.type_ == "timestamp" {
                    s
                } else {
                    quote_item(&s)
                }
            })
            .collect();
        return Some(items.join(", "));
    }
    header_scalar(Some(r), shape, v)
}

/// Headers, status code and the members left for the body, from a structure with
/// HTTP-bound members (outputs and error shapes alike).
pub(crate) fn bound_members(
    model: &ServiceModel,
    shape: &Shape,
    obj: &Map<String, Value>,
    headers: &mut Vec<(String, String)>,
    status: &mut Option<u16>,
) {
    for (mname, mref) in &shape.members {
        let Some(v) = obj.get(mname).filter(|v| !v.is_null()) else {
            continue;
        };
        match mref.location.as_deref() {
            Some("header") => {
                if let Some(text) = header_value(model, mref, v) {
                    let name = mref.location_name.as_deref().unwrap_or(mname);
                    headers.push((name.to_string(), text));
                }
            }
            Some("headers") => {
                let prefix = mref.location_name.as_deref().unwrap_or("");
                let vshape = model
                    .shape(&mref.shape)
                    .and_then(|s| s.value.as_deref())
                    .and_then(|vr| Some((vr, model.shape(&vr.shape)?)));
                if let (Some(entries), Some((vref, vshape))) = (v.as_object(), vshape) {
                    for (k, val) in entries {
                        if let Some(text) = header_scalar(Some(vref), vshape, val) {
                            headers.push((format!("{prefix}{k}"), text));
                        }
                    }
                }
            }
            Some("statusCode") => {
                if let Some(code) = v.as_u64().filter(|c| (100..=599).contains(c)) {
                    *status = Some(code as u16);
                }
            }
            _ => {}
        }
    }
}

fn set_default_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
        headers.push((name.to_string(), value.to_string()));
    }
}

/// The namespace written on a rest-xml root: the shape's, else the model's, else the AWS
/// convention `http://<endpointPrefix>.amazonaws.com/doc/<apiVersion>/` (S3's namespace).
fn rest_xml_namespace(model: &ServiceModel, shape: &Shape) -> Option<(String, String)> {
    if let Some(attr) = super::xml::ns_attr(shape.xml_namespace.as_ref()) {
        return Some(attr);
    }
    if model.metadata.xml_namespace.is_none() && model.metadata.endpoint_prefix.is_none() {
        return None;
    }
    Some(("xmlns".to_string(), super::xml_namespace(model, "http")))
}

/// A rest-json or rest-xml response.
pub(crate) fn rest_response(
    model: &ServiceModel,
    protocol: Protocol,
    op: &Operation,
    output: &Value,
    ctx: &ResponseContext,
) -> HttpResponse {
    let mut headers = Vec::new();
    let mut status = None;
    let mut body = Vec::new();
    let xml = protocol == Protocol::RestXml;
    let empty = Map::new();
    let obj = output.as_object().unwrap_or(&empty);
    let out_ref = op.output.as_ref();
    let out_shape = out_ref.and_then(|r| model.shape(&r.shape));
    if let (Some(oref), Some(shape)) = (out_ref, out_shape) {
        bound_members(model, shape, obj, &mut headers, &mut status);
        if let Some(pname) = shape.payload.as_deref() {
            let pref = shape.members.get(pname);
            let pshape = pref.and_then(|r| model.shape(&r.shape));
            let pval = obj.get(pname).filter(|v| !v.is_null());
            if let (Some(pref), Some(pshape), Some(pval)) = (pref, pshape, pval) {
                payload_body(
                    model,
                    xml,
                    pname,
                    pref,
                    pshape,
                    pval,
                    &mut headers,
                    &mut body,
                );
            }
        } else if xml && op.name == "GetBucketLocation" {
            // S3 answers with the member as the document element, empty for us-east-1.
            let mut out = XmlOut::default();
            let attrs: Vec<_> = rest_xml_namespace(model, shape).into_iter().collect();
            let text = obj
                .get("LocationConstraint")
                .and_then(|v| scalar_text("string", v))
                .unwrap_or_default();
            out.leaf("LocationConstraint", &attrs, &text);
            body = out.buf.into_bytes();
            set_default_header(&mut headers, "Content-Type", "application/xml");
        } else if xml {
            let has_body = shape
                .members
                .iter()
                .any(|(n, r)| !super::http_bound(r) && obj.get(n).is_some_and(|v| !v.is_null()));
            if has_body {
                let w = XmlWriter { model };
                let mut out = XmlOut::default();
                let root = s3_root_name(model, &oref.shape)
                    .map(str::to_string)
                    .unwrap_or_else(|| root_name(&oref.shape, shape, None));
                let attrs: Vec<_> = rest_xml_namespace(model, shape).into_iter().collect();
                w.structure(&mut out, &root, attrs, shape, output);
                body = out.buf.into_bytes();
                set_default_header(&mut headers, "Content-Type", "application/xml");
            }
        } else {
            let w = JsonWriter { model };
            body = json::to_bytes(&Value::Object(w.structure(shape, obj)));
            set_default_header(&mut headers, "Content-Type", "application/json");
        }
    }
    let request_id_header = if xml {
        "x-amz-request-id"
    } else {
        "x-amzn-RequestId"
    };
    headers.push((request_id_header.to_string(), ctx.request_id.clone()));
    HttpResponse {
        status: status.or(op.http.response_code).unwrap_or(200),
        headers,
        body,
    }
}

/// S3's response root elements come from its Smithy model's `@xmlName`, which botocore's model
/// drops: the names S3 actually sends, by output shape.
const S3_ROOTS: &[(&str, &str)] = &[
    ("ListBucketsOutput", "ListAllMyBucketsResult"),
    (
        "ListDirectoryBucketsOutput",
        "ListAllMyDirectoryBucketsResult",
    ),
    ("ListObjectsOutput", "ListBucketResult"),
    ("ListObjectsV2Output", "ListBucketResult"),
    ("ListObjectVersionsOutput", "ListVersionsResult"),
    (
        "CreateMultipartUploadOutput",
        "InitiateMultipartUploadResult",
    ),
    (
        "CompleteMultipartUploadOutput",
        "CompleteMultipartUploadResult",
    ),
    ("ListPartsOutput", "ListPartsResult"),
    ("ListMultipartUploadsOutput", "ListMultipartUploadsResult"),
    ("DeleteObjectsOutput", "DeleteResult"),
    ("GetBucketTaggingOutput", "Tagging"),
    ("GetObjectTaggingOutput", "Tagging"),
    ("GetBucketVersioningOutput", "VersioningConfiguration"),
    ("GetBucketCorsOutput", "CORSConfiguration"),
    (
        "GetBucketLifecycleConfigurationOutput",
        "LifecycleConfiguration",
    ),
    ("GetBucketLifecycleOutput", "LifecycleConfiguration"),
    ("NotificationConfiguration", "NotificationConfiguration"),
    ("GetBucketAclOutput", "AccessControlPolicy"),
    ("GetObjectAclOutput", "AccessControlPolicy"),
    ("GetObjectAttributesOutput", "GetObjectAttributesResponse"),
    ("GetBucketWebsiteOutput", "WebsiteConfiguration"),
    ("GetBucketLoggingOutput", "BucketLoggingStatus"),
    (
        "GetBucketRequestPaymentOutput",
        "RequestPaymentConfiguration",
    ),
    (
        "GetBucketAccelerateConfigurationOutput",
        "AccelerateConfiguration",
    ),
    (
        "GetObjectLockConfigurationOutput",
        "ObjectLockConfiguration",
    ),
    ("GetBucketReplicationOutput", "ReplicationConfiguration"),
    (
        "ListBucketAnalyticsConfigurationsOutput",
        "ListBucketAnalyticsConfigurationResult",
    ),
    (
        "ListBucketInventoryConfigurationsOutput",
        "ListInventoryConfigurationsResult",
    ),
    (
        "ListBucketMetricsConfigurationsOutput",
        "ListMetricsConfigurationsResult",
    ),
    (
        "ListBucketIntelligentTieringConfigurationsOutput",
        "ListBucketIntelligentTieringConfigurationsOutput",
    ),
];

fn s3_root_name(model: &ServiceModel, output_shape: &str) -> Option<&'static str> {
    if model.metadata.endpoint_prefix.as_deref() != Some("s3") {
        return None;
    }
    S3_ROOTS
        .iter()
        .find(|(s, _)| *s == output_shape)
        .map(|(_, r)| *r)
}

/// The body of an output with a `payload` member.
#[allow(clippy::too_many_arguments)]
fn payload_body(
    model: &ServiceModel,
    xml: bool,
    pname: &str,
    pref: &ShapeRef,
    pshape: &Shape,
    pval: &Value,
    headers: &mut Vec<(String, String)>,
    body: &mut Vec<u8>,
) {
    if pshape.document == Some(true) && !xml {
        *body = json::to_bytes(pval);
        set_default_header(headers, "Content-Type", "application/json");
        return;
    }
    match pshape.type_.as_str() {
        "blob" => {
            if let Some(s) = pval.as_str() {
                *body = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .unwrap_or_else(|_| s.as_bytes().to_vec());
                set_default_header(headers, "Content-Type", "application/octet-stream");
            }
        }
        "string" => {
            if let Some(s) = scalar_text("string", pval) {
                *body = s.into_bytes();
                set_default_header(headers, "Content-Type", "text/plain");
            }
        }
        "structure" => {
            if xml {
                let w = XmlWriter { model };
                let mut out = XmlOut::default();
                let root = root_name(&pref.shape, pshape, Some((pname, pref)));
                let attrs: Vec<_> = super::xml::ns_attr(
                    pref.xml_namespace
                        .as_ref()
                        .or(pshape.xml_namespace.as_ref()),
                )
                .into_iter()
                .collect();
                w.structure(&mut out, &root, attrs, pshape, pval);
                *body = out.buf.into_bytes();
                set_default_header(headers, "Content-Type", "application/xml");
            } else if let Some(v) = (JsonWriter { model }).shaped(Some(pref), pshape, pval) {
                *body = json::to_bytes(&v);
                set_default_header(headers, "Content-Type", "application/json");
            }
        }
        _ => {
            if let Some(v) = (JsonWriter { model }).shaped(Some(pref), pshape, pval) {
                *body = json::to_bytes(&v);
            }
        }
    }
}
