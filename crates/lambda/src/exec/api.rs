//! The Lambda Runtime API (`2018-06-01`) and enough of the Extensions API (`2020-01-01`) that
//! extensions start: HTTP/1.1 served with hyper on a connection already tied to one
//! environment (by the link-local address it reached, or by its own listener).
//!
//! Must not live here: which environment an invocation goes to (`super`), AWS errors of the
//! Invoke operation (those are `ApiError`s built by the executor).

use super::env::{Env, Outcome};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;

/// The most a buffered response may carry (AWS: 6 MB, reported as 6291556 bytes).
pub(crate) const MAX_RESPONSE: usize = 6_291_556;
/// The most a streamed response may carry (AWS: 20 MB).
const MAX_STREAMED: usize = 20 * 1024 * 1024;
/// The most an error document may carry.
const MAX_ERROR: usize = 1024 * 1024;

type Reply = Response<Full<Bytes>>;

/// Serves one connection of a runtime (or extension) of `env`.
pub(crate) fn serve(env: Arc<Env>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(stream);
        let svc = hyper::service::service_fn(move |req| {
            let env = env.clone();
            async move { Ok::<_, Infallible>(handle(env, req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, svc)
            .await;
    });
}

fn json(status: StatusCode, body: serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn accepted() -> Reply {
    json(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    json(
        status,
        serde_json::json!({"errorMessage": message, "errorType": error_type}),
    )
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn handle(env: Arc<Env>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (method, parts.as_slice()) {
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => next(&env).await,
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "response"]) => {
            let id = id.to_string();
            response(&env, &id, req).await
        }
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "error"]) => {
            let id = id.to_string();
            if !env.is_pending(&id) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestID",
                    "Invalid request ID",
                );
            }
            let (error_type, body) = error_doc(req).await;
            match env.complete(&id, Outcome::Error { error_type, body }) {
                Ok(()) => accepted(),
                Err(()) => error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestID",
                    "Invalid request ID",
                ),
            }
        }
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            if env.is_ready() {
                return error(
                    StatusCode::FORBIDDEN,
                    "InvalidStateTransition",
                    "State transition from Ready to InitError failed for runtime.",
                );
            }
            let (error_type, body) = error_doc(req).await;
            env.fail(Outcome::InitError { error_type, body });
            accepted()
        }
        (Method::POST, ["2018-06-01", "runtime", "restore", "error"]) => accepted(),
        (Method::POST, ["2020-01-01", "extension", "register"]) => {
            let spec = &env.spec;
            let mut r = json(
                StatusCode::OK,
                serde_json::json!({
                    "functionName": spec.function_name,
                    "functionVersion": spec.version,
                    "handler": spec.handler.clone().unwrap_or_default(),
                }),
            );
            if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                r.headers_mut().insert("lambda-extension-identifier", v);
            }
            r
        }
        (Method::GET, ["2020-01-01", "extension", "event", "next"]) => {
            // Extensions learn only of the end: the environment's shutdown.
            env.until_failed().await;
            json(
                StatusCode::OK,
                serde_json::json!({
                    "eventType": "SHUTDOWN",
                    "shutdownReason": "spindown",
                    "deadlineMs": super::now_ms() + 2000,
                }),
            )
        }
        (Method::POST, ["2020-01-01", "extension", "init", "error"])
        | (Method::POST, ["2020-01-01", "extension", "exit", "error"]) => accepted(),
        (Method::PUT, ["2020-08-15", "logs"]) | (Method::PUT, ["2022-07-01", "telemetry"]) => {
            json(StatusCode::OK, serde_json::json!("OK"))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "InvalidRequest",
            &format!("Unknown request {} {path}", req.method()),
        ),
    }
}

async fn next(env: &Env) -> Reply {
    let Some(inv) = env.next().await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "The execution environment is shutting down",
        );
    };
    let mut r = Response::new(Full::new(inv.payload.clone()));
    let h = r.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.invoked_arn);
    set("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(c) = &inv.client_context {
        set("lambda-runtime-client-context", c);
    }
    if let Some(c) = &inv.cognito_identity {
        set("lambda-runtime-cognito-identity", c);
    }
    r
}

async fn response(env: &Env, id: &str, req: Request<Incoming>) -> Reply {
    if !env.is_pending(id) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        );
    }
    let streaming = header(&req, "lambda-runtime-function-response-mode")
        .map(|m| m.eq_ignore_ascii_case("streaming"))
        .unwrap_or(false);
    let limit = if streaming {
        MAX_STREAMED
    } else {
        MAX_RESPONSE
    };
    let collected = match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => c,
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                let _ = env.complete(id, Outcome::TooLarge);
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
                );
            }
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("Cannot read the response body: {e}"),
            );
        }
    };
    // A streamed response reports a mid-stream error in its trailers.
    let trailer_error = collected.trailers().and_then(|t| {
        let ty = t
            .get("lambda-runtime-function-error-type")?
            .to_str()
            .ok()?
            .to_string();
        let body = t
            .get("lambda-runtime-function-error-body")
            .and_then(|v| v.to_str().ok())
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        Some((ty, body))
    });
    let body = collected.to_bytes();
    let outcome = match trailer_error {
        Some((error_type, body)) => Outcome::Error {
            error_type,
            body: Bytes::from(body),
        },
        None if body.len() > MAX_RESPONSE => Outcome::TooLarge,
        None => Outcome::Response(body),
    };
    match env.complete(id, outcome) {
        Ok(()) => accepted(),
        Err(()) => error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        ),
    }
}

/// The error type header and the JSON error document of `/error` and `/init/error`.
async fn error_doc(req: Request<Incoming>) -> (String, Bytes) {
    let error_type =
        header(&req, "lambda-runtime-function-error-type").unwrap_or_else(|| "Unhandled".into());
    let body = Limited::new(req.into_body(), MAX_ERROR)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (error_type, body)
}
