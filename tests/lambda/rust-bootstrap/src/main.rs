//! A `provided.al2023` Lambda function built with the `lambda_runtime` crate: echoes its event.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if payload.get("fail").is_some() {
        return Err("asked to fail".into());
    }
    Ok(json!({
        "echo": payload,
        "request_id": ctx.request_id,
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
