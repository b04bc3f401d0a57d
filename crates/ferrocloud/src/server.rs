//! The HTTP endpoint: one listener that answers every AWS service and ferrocloud's own
//! `/_ferrocloud/...` endpoints. A request goes: body limit -> routing -> protocol and operation
//! -> authentication -> input parsing -> service handler -> serializer. Every step that fails
//! answers an AWS-shaped error in the protocol of the service.

use crate::authn::{self, Caller};
use crate::config::Config;
use anyhow::{Context, Result};
use bytes::Bytes;
use fc_protocol::body::BodyError;
use fc_protocol::route::{self, ALL_SERVICES};
use fc_protocol::{
    ApiError, BodyIn, BodyOut, HttpRequest, HttpResponse, Protocol, ResponseContext,
};
use fc_services::{RawHandler, Registry, Reply, RequestContext};
use fc_store::Store;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::{info, info_span, warn, Instrument};

/// Everything a request needs, cheap to clone.
#[derive(Clone)]
pub struct App {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    /// The OCI distribution API at `/v2/`, once the registry is wired in.
    pub oci: Option<Arc<dyn RawHandler>>,
    /// Lambda function URLs: requests whose Host is `<url-id>.lambda-url.<region>.<anything>`.
    pub function_urls: Option<Arc<dyn RawHandler>>,
    /// `GET /_ferrocloud/costs`.
    pub ledger: Option<Arc<fc_services::costs::Ledger>>,
    /// Internal (non-AWS) endpoints of services: `/_ferrocloud/<prefix>/...` goes to the
    /// handler of `<prefix>` (for example `ec2` for spot interruptions in tests).
    pub internal: Vec<(&'static str, Arc<dyn RawHandler>)>,
    /// S3, for CORS: preflight `OPTIONS` answers and the headers of requests with an `Origin`.
    pub s3: Option<Arc<fc_services::s3::S3>>,
}

type Resp = hyper::Response<RespBody>;

/// The largest streamed request body (S3's single PUT limit, 5 GiB).
const STREAM_LIMIT: u64 = 5 << 30;

/// A response body: in memory, or chunks streamed from a file or a producer.
pub enum RespBody {
    Full(Option<Bytes>),
    Channel {
        rx: tokio::sync::mpsc::Receiver<Result<Bytes, BodyError>>,
        len: Option<u64>,
    },
}

impl hyper::body::Body for RespBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        use std::task::Poll;
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(hyper::body::Frame::data(b))),
            ),
            RespBody::Channel { rx, .. } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, RespBody::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            RespBody::Full(b) => {
                hyper::body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
            RespBody::Channel { len: Some(n), .. } => hyper::body::SizeHint::with_exact(*n),
            RespBody::Channel { len: None, .. } => hyper::body::SizeHint::default(),
        }
    }
}

/// Feed an incoming HTTP body into a [`BodyIn`] chunk by chunk, refusing more than `limit`.
fn pump(mut incoming: Incoming, content_length: Option<u64>, limit: u64) -> BodyIn {
    let (tx, body) = BodyIn::channel(content_length, 8);
    tokio::spawn(async move {
        let mut total = 0u64;
        while let Some(frame) = incoming.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        total += data.len() as u64;
                        if total > limit {
                            let _ = tx.send(Err(BodyError::TooLarge(limit))).await;
                            return;
                        }
                        if tx.send(Ok(data)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(BodyError::Read(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    body
}

/// Turn a [`BodyOut`] into a response body, streaming files in [`FILE_CHUNK`] chunks.
fn out_body(body: BodyOut) -> RespBody {
    match body {
        BodyOut::Bytes(b) => RespBody::Full(Some(b)),
        BodyOut::Stream { rx, len } => RespBody::Channel { rx, len },
        BodyOut::File { path, offset, len } => {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            tokio::task::spawn_blocking(move || stream_file(path, offset, len, tx));
            RespBody::Channel { rx, len: Some(len) }
        }
    }
}

/// Size of the reads that stream a file into a response, up to 8 of them in flight. Measured on
/// 64 MiB GETs over loopback (30 each): 256 KiB x 8 gave a median of 2,700-2,900 MiB/s and a
/// minimum of 1,800; 1 MiB x 4 gave 2,200 and 1,400; 4 MiB x 4 gave 1,500 and 900.
const FILE_CHUNK: u64 = 256 << 10;

/// Read a file range on a blocking thread in big reads (one system call per chunk, no zeroing
/// of buffers) and hand the chunks to the response.
fn stream_file(
    path: std::path::PathBuf,
    offset: u64,
    len: u64,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, BodyError>>,
) {
    use std::io::{Read, Seek};
    let fail = |m: String| BodyError::Read(format!("{}: {m}", path.display()));
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(fail(e.to_string())));
            return;
        }
    };
    if let Err(e) = file.seek(std::io::SeekFrom::Start(offset)) {
        let _ = tx.blocking_send(Err(fail(e.to_string())));
        return;
    }
    let mut left = len;
    while left > 0 {
        let want = left.min(FILE_CHUNK);
        let mut buf = Vec::with_capacity(want as usize);
        match (&mut file).take(want).read_to_end(&mut buf) {
            Ok(0) => {
                let _ = tx.blocking_send(Err(fail("ended early".to_string())));
                return;
            }
            Ok(n) => {
                left -= n as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(fail(e.to_string())));
                return;
            }
        }
    }
}

fn raw_response(
    status: u16,
    headers: Vec<(String, String)>,
    body: BodyOut,
    request_id: &str,
) -> Resp {
    let mut r = hyper::Response::new(out_body(body));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    if !h.contains_key("x-amzn-requestid") {
        if let Ok(v) = http::HeaderValue::from_str(request_id) {
            h.insert("x-amzn-requestid", v);
        }
    }
    r
}

/// Add headers (S3's CORS headers) to a response.
fn with_headers(mut resp: Resp, headers: Vec<(String, String)>) -> Resp {
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
    resp
}

/// `bucket.s3.localhost.localstack.cloud:4566/key` -> `/bucket/key`: virtual-hosted-style S3
/// requests become path-style before the operation is resolved.
fn virtual_host_to_path(req: &mut HttpRequest) {
    let Some(host) = req.header("host") else {
        return;
    };
    let host = host.split(':').next().unwrap_or("");
    let labels: Vec<&str> = host.split('.').collect();
    let Some(pos) = labels
        .iter()
        .position(|l| *l == "s3" || l.starts_with("s3-"))
    else {
        return;
    };
    if pos == 0 {
        return;
    }
    let bucket = labels[..pos].join(".");
    req.path = if req.path == "/" || req.path.is_empty() {
        format!("/{bucket}")
    } else {
        format!("/{bucket}{}", req.path)
    };
}

fn plain(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
    let mut r = hyper::Response::new(RespBody::Full(Some(Bytes::from(body))));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn to_hyper(resp: HttpResponse, request_id: &str) -> Resp {
    let mut r = hyper::Response::new(RespBody::Full(Some(Bytes::from(resp.body))));
    *r.status_mut() =
        http::StatusCode::from_u16(resp.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            h.append(k, v);
        }
    }
    if !h.contains_key("x-amzn-requestid") {
        if let Ok(v) = http::HeaderValue::from_str(request_id) {
            h.insert("x-amzn-requestid", v);
        }
    }
    r
}

/// Undo `Content-Encoding: gzip` on a request body (within the body limit), and drop the
/// header so parsers see the plain body.
fn decode_content_encoding(req: &mut HttpRequest, limit: usize) -> Result<(), ApiError> {
    let Some(enc) = req.header("content-encoding").map(str::to_ascii_lowercase) else {
        return Ok(());
    };
    let codings: Vec<&str> = enc
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if !codings.contains(&"gzip") {
        return Ok(());
    }
    use std::io::Read;
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(&req.body[..]).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::client(
            "InvalidRequest",
            format!("the gzip-encoded body cannot be decoded: {e}"),
        )
    })?;
    if out.len() > limit {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Decoded request body is larger than the limit of {limit} bytes"),
        ));
    }
    req.body = Bytes::from(out);
    let rest: Vec<&str> = codings.into_iter().filter(|c| *c != "gzip").collect();
    req.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-encoding"));
    if !rest.is_empty() {
        req.headers
            .push(("content-encoding".to_string(), rest.join(", ")));
    }
    Ok(())
}

/// An error for a request whose service is unknown: awsQuery-style XML, which every AWS
/// client can read.
fn unknown_service_error(request_id: &str, message: &str) -> Resp {
    let model = fc_protocol::service_model("sts").expect("sts model is vendored");
    let err = ApiError::client("UnknownService", message);
    let ctx = ResponseContext {
        request_id: request_id.to_string(),
    };
    to_hyper(
        fc_protocol::serialize_error(model, Protocol::Query, None, &err, &ctx),
        request_id,
    )
}

impl App {
    /// Health: every service the models know, and whether ferrocloud serves it.
    pub fn health(&self) -> serde_json::Value {
        let services: serde_json::Map<String, serde_json::Value> = ALL_SERVICES
            .iter()
            .map(|s| {
                let state = if self.registry.get(s).is_some() {
                    "available"
                } else {
                    "unavailable"
                };
                (s.to_string(), json!(state))
            })
            .collect();
        json!({
            "status": "running",
            "version": env!("CARGO_PKG_VERSION"),
            "edition": "ferrocloud",
            "services": services,
        })
    }

    async fn handle(self, req: hyper::Request<Incoming>, remote: SocketAddr) -> Resp {
        let request_id = fc_types::ids::request_id();
        let started = Instant::now();
        note_activity();
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();

        let content_length = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());

        if let Some(internal) = path.strip_prefix("/_ferrocloud/") {
            let prefix = internal.split('/').next().unwrap_or("");
            if let Some((_, h)) = self.internal.iter().find(|(p, _)| *p == prefix) {
                let h = h.clone();
                let http_req = HttpRequest {
                    method,
                    path,
                    query,
                    headers,
                    body: Bytes::new(),
                };
                let body = pump(req.into_body(), content_length, STREAM_LIMIT);
                let reply = h.handle(http_req, body).await;
                return raw_response(reply.status, reply.headers, reply.body, &request_id);
            }
            return self.internal(&method, internal).await;
        }

        let mut http_req = HttpRequest {
            method,
            path,
            query,
            headers,
            body: Bytes::new(),
        };

        let raw = if is_function_url_host(&http_req) {
            self.function_urls.clone()
        } else {
            self.raw_handler_for(&http_req.path)
        };
        if let Some(raw) = raw {
            let body = pump(req.into_body(), content_length, STREAM_LIMIT);
            let reply = raw.handle(http_req, body).await;
            return raw_response(reply.status, reply.headers, reply.body, &request_id);
        }

        // Operations whose payload streams (S3 objects) are decided from the headers alone and
        // never read whole; every other body is read within the configured limit.
        let mut cors: Vec<(String, String)> = Vec::new();
        if let Some(r) = route::route(&http_req) {
            if r.service == "s3" {
                virtual_host_to_path(&mut http_req);
                if let Some(s3) = self.s3.clone() {
                    if http_req.method == "OPTIONS" {
                        let req = http_req.clone();
                        let answer = tokio::task::spawn_blocking(move || s3.cors_preflight(&req))
                            .await
                            .unwrap_or_else(|e| Err(ApiError::internal(e.to_string())));
                        return match answer {
                            Ok(headers) => raw_response(
                                200,
                                headers,
                                BodyOut::Bytes(Bytes::new()),
                                &request_id,
                            ),
                            Err(err) => self.error_for("s3", &http_req, &err, &request_id),
                        };
                    }
                    if http_req.header("origin").is_some() {
                        cors = s3.cors_headers(&http_req);
                    }
                }
            }
            if let Some(model) = fc_protocol::service_model(r.service) {
                let protocol = fc_protocol::detect_protocol(model, &http_req);
                // Only REST protocols bind a payload member to the whole body, so only they
                // can stream; other requests skip this early resolution.
                let rest = matches!(protocol, Protocol::RestJson | Protocol::RestXml);
                let op = rest
                    .then(|| fc_protocol::resolve_operation(model, protocol, &http_req).ok())
                    .flatten();
                if let Some(op) = op {
                    if fc_protocol::streams_input(model, op) {
                        let body = pump(req.into_body(), content_length, STREAM_LIMIT);
                        let resp = self
                            .serve_operation(
                                http_req,
                                None,
                                Some(body),
                                r,
                                request_id,
                                started,
                                remote,
                            )
                            .await;
                        return with_headers(resp, cors);
                    }
                }
            }
        }

        let limit = self.cfg.max_body_bytes;
        let body = match Limited::new(req.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let too_big = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                let err = if too_big {
                    ApiError::new(
                        413,
                        "RequestEntityTooLarge",
                        format!("Request body is larger than the limit of {limit} bytes"),
                    )
                } else {
                    ApiError::client(
                        "IncompleteBody",
                        format!("could not read the request body: {e}"),
                    )
                };
                return match route::route(&http_req) {
                    Some(r) => self.error_for(r.service, &http_req, &err, &request_id),
                    None => unknown_service_error(&request_id, &err.message),
                };
            }
        };
        http_req.body = body;
        // SDKs gzip large bodies (CloudWatch PutMetricData) and say so in Content-Encoding.
        // Signatures cover the body as sent: keep it for authentication when it gets decoded.
        let signed_req = http_req
            .header("content-encoding")
            .map(|_| http_req.clone());
        if let Err(err) = decode_content_encoding(&mut http_req, limit) {
            return match route::route(&http_req) {
                Some(r) => self.error_for(r.service, &http_req, &err, &request_id),
                None => unknown_service_error(&request_id, &err.message),
            };
        }
        // The routing decision may depend on the form body (Action/Version): decide again.
        let Some(route) = route::route(&http_req) else {
            return unknown_service_error(
                &request_id,
                "ferrocloud could not tell which AWS service this request is for",
            );
        };
        let resp = self
            .serve_operation(
                http_req, signed_req, None, route, request_id, started, remote,
            )
            .await;
        with_headers(resp, cors)
    }

    /// Resolve, authenticate, parse, dispatch and serialize one AWS API request.
    #[allow(clippy::too_many_arguments)]
    async fn serve_operation(
        &self,
        http_req: HttpRequest,
        signed_req: Option<HttpRequest>,
        stream: Option<BodyIn>,
        route: route::Route,
        request_id: String,
        started: Instant,
        remote: SocketAddr,
    ) -> Resp {
        let region = route
            .region
            .clone()
            .unwrap_or_else(|| self.cfg.region.clone());
        let service = route.service;
        let Some(model) = fc_protocol::service_model(service) else {
            return unknown_service_error(&request_id, &format!("unknown service {service}"));
        };
        let protocol = fc_protocol::detect_protocol(model, &http_req);
        let rctx = ResponseContext {
            request_id: request_id.clone(),
        };
        let op = match fc_protocol::resolve_operation(model, protocol, &http_req) {
            Ok(op) => op,
            Err(err) => {
                info!(request_id, service, status = err.status, code = %err.code, "unresolved operation");
                return to_hyper(
                    fc_protocol::serialize_error(model, protocol, None, &err, &rctx),
                    &request_id,
                );
            }
        };
        let json_codes = matches!(
            protocol,
            Protocol::Json | Protocol::RestJson | Protocol::RpcV2Cbor
        );
        let caller = match authn::authenticate(
            self,
            signed_req.as_ref().unwrap_or(&http_req),
            json_codes,
            stream.is_some(),
        )
        .await
        {
            Ok(c) => c,
            Err(err) => {
                info!(request_id, service, operation = %op.name, status = err.status, code = %err.code, "authentication failed");
                return to_hyper(
                    fc_protocol::serialize_error(model, protocol, Some(op), &err, &rctx),
                    &request_id,
                );
            }
        };
        let span = info_span!(
            "request",
            request_id = %request_id,
            service,
            operation = %op.name,
            account = %caller.account,
            region = %region,
        );
        let host = http_req
            .header("host")
            .unwrap_or("localhost:4566")
            .to_string();
        let streaming = stream.is_some() || fc_protocol::streams_output(model, op);
        let result = self
            .dispatch(
                model,
                protocol,
                op,
                &http_req,
                stream,
                streaming,
                caller,
                &region,
                &request_id,
                &host,
            )
            .instrument(span.clone())
            .await;
        let (resp, status) = match result {
            Ok(mut reply) => {
                // A handler may set the HTTP status where the model has no member for it (S3's
                // 206 for ranged reads): `__status` in the output value.
                let status_override = reply
                    .value
                    .as_object_mut()
                    .and_then(|o| o.remove("__status"))
                    .and_then(|v| v.as_u64())
                    .and_then(|v| u16::try_from(v).ok());
                let mut r =
                    fc_protocol::serialize_response(model, protocol, op, &reply.value, &rctx);
                if let Some(st) = status_override {
                    r.status = st;
                }
                let s = r.status;
                match reply.body {
                    Some(body) => (raw_response(r.status, r.headers, body, &request_id), s),
                    None => (to_hyper(r, &request_id), s),
                }
            }
            Err(err) => {
                let r = fc_protocol::serialize_error(model, protocol, Some(op), &err, &rctx);
                let s = r.status;
                span.in_scope(|| info!(code = %err.code, message = %err.message, "error"));
                (to_hyper(r, &request_id), s)
            }
        };
        span.in_scope(|| {
            info!(
                status,
                remote = %remote,
                micros = started.elapsed().as_micros() as u64,
                "served"
            )
        });
        resp
    }

    #[allow(clippy::too_many_arguments)]
    async fn dispatch(
        &self,
        model: &fc_protocol::ServiceModel,
        protocol: Protocol,
        op: &fc_protocol::Operation,
        req: &HttpRequest,
        stream: Option<BodyIn>,
        streaming: bool,
        caller: Caller,
        region: &str,
        request_id: &str,
        host: &str,
    ) -> Result<Reply, ApiError> {
        let mut input = fc_protocol::parse_request(model, protocol, op, req)?;
        // A streamed body is checked by its handler against the hash the client declared.
        if let (Some(_), Some(hash), Some(obj)) = (
            stream.as_ref(),
            req.header("x-amz-content-sha256"),
            input.as_object_mut(),
        ) {
            obj.insert("__ContentSha256".into(), serde_json::Value::from(hash));
        }
        let Some(service) = self.registry.get(&model.name).cloned() else {
            return Err(ApiError::not_implemented(&model.name, &op.name));
        };
        let ctx = RequestContext {
            request_id: request_id.to_string(),
            account: caller.account,
            region: region.to_string(),
            service: model.name.clone(),
            operation: op.name.clone(),
            access_key: caller.access_key,
            principal: caller.principal,
            endpoint: format!("http://{host}"),
        };
        // A panicking handler becomes a 500; it never takes the server down.
        let task = tokio::spawn(async move {
            if streaming {
                let body = stream.unwrap_or_else(BodyIn::empty);
                service.call_stream(&ctx, input, body).await
            } else {
                service
                    .call(&ctx, input)
                    .await
                    .map(|value| Reply { value, body: None })
            }
        });
        match task.await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "handler panicked");
                Err(ApiError::internal(
                    "internal error while handling the request",
                ))
            }
        }
    }

    fn raw_handler_for(&self, path: &str) -> Option<Arc<dyn RawHandler>> {
        if path == "/v2" || path.starts_with("/v2/") {
            return self.oci.clone();
        }
        None
    }

    fn error_for(
        &self,
        service: &str,
        req: &HttpRequest,
        err: &ApiError,
        request_id: &str,
    ) -> Resp {
        let Some(model) = fc_protocol::service_model(service) else {
            return unknown_service_error(request_id, &err.message);
        };
        let protocol = fc_protocol::detect_protocol(model, req);
        let ctx = ResponseContext {
            request_id: request_id.to_string(),
        };
        to_hyper(
            fc_protocol::serialize_error(model, protocol, None, err, &ctx),
            request_id,
        )
    }

    async fn internal(&self, method: &str, path: &str) -> Resp {
        match (method, path) {
            ("GET", "health") | ("HEAD", "health") => {
                let body = serde_json::to_vec_pretty(&self.health()).unwrap_or_default();
                plain(200, "application/json", body)
            }
            ("GET", "costs") => match &self.ledger {
                Some(ledger) => {
                    let ledger = ledger.clone();
                    let report = tokio::task::spawn_blocking(move || {
                        ledger.report(fc_protocol::value::now_secs())
                    })
                    .await
                    .unwrap_or_else(|e| json!({"error": e.to_string()}));
                    let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
                    plain(200, "application/json", body)
                }
                None => plain(
                    404,
                    "application/json",
                    br#"{"error":"no cost ledger"}"#.to_vec(),
                ),
            },
            ("POST", "state/reset") => {
                let store = self.store.clone();
                match tokio::task::spawn_blocking(move || store.reset()).await {
                    Ok(Ok(())) => {
                        fc_services::identity::clear_cache();
                        info!("state reset");
                        plain(200, "application/json", br#"{"reset":true}"#.to_vec())
                    }
                    Ok(Err(e)) => plain(
                        500,
                        "application/json",
                        json!({"error": e.to_string()}).to_string().into_bytes(),
                    ),
                    Err(e) => plain(
                        500,
                        "application/json",
                        json!({"error": e.to_string()}).to_string().into_bytes(),
                    ),
                }
            }
            _ => plain(
                404,
                "application/json",
                json!({"error": format!("no ferrocloud endpoint {method} /_ferrocloud/{path}")})
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

/// Serve until SIGINT/SIGTERM, then finish in-flight requests (up to 10 s) and return.
pub async fn serve(app: App, listener: TcpListener) -> Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let svc = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(req, remote).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => {
                info!("SIGINT received, shutting down");
                break;
            }
            _ = sigterm.recv() => {
                info!("SIGTERM received, shutting down");
                break;
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => info!("all connections closed"),
        _ = tokio::time::sleep(Duration::from_secs(10)) => warn!("timed out waiting for connections to close"),
    }
    Ok(())
}

/// Whether the request's Host names a Lambda function URL (`<id>.lambda-url.<region>.…`).
fn is_function_url_host(req: &HttpRequest) -> bool {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, h)| {
            let mut labels = h.split('.');
            labels.next().is_some_and(|id| !id.is_empty()) && labels.next() == Some("lambda-url")
        })
        .unwrap_or(false)
}

/// Milliseconds since the first call, on the monotonic clock.
fn mono_ms() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// When the last request arrived ([`mono_ms`]).
static LAST_ACTIVITY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn note_activity() {
    LAST_ACTIVITY.store(mono_ms(), std::sync::atomic::Ordering::Relaxed);
}

/// Once no request has arrived for `quiet`, release the free C heap and the resident pages of
/// the executable's code (see `fc_runtime::release_c_heap` and `release_code_pages`); again
/// after each later burst of requests.
pub fn spawn_idle_trim(quiet: Duration) {
    use std::sync::atomic::Ordering;
    note_activity();
    tokio::spawn(async move {
        let mut trimmed_after: Option<u64> = None;
        let mut tick = tokio::time::interval(quiet / 2);
        loop {
            tick.tick().await;
            let last = LAST_ACTIVITY.load(Ordering::Relaxed);
            if trimmed_after == Some(last)
                || mono_ms().saturating_sub(last) < quiet.as_millis() as u64
            {
                continue;
            }
            trimmed_after = Some(last);
            match tokio::task::spawn_blocking(|| {
                fc_runtime::release_c_heap();
                fc_runtime::release_code_pages()
            })
            .await
            {
                Ok(Ok(bytes)) => tracing::debug!(bytes, "idle: released resident code pages"),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "idle: cannot release code pages; not trying again");
                    return;
                }
                Err(_) => return,
            }
        }
    });
}
