//! SigV4 verification of a request in strict mode (the algorithm lives in fc-auth), and the
//! translation of authentication failures into the error codes each protocol family uses.

use fc_auth::sigv4::{self, Payload, SignedRequest};
use fc_auth::{AuthError, AuthErrorCode};
use fc_protocol::{ApiError, HttpRequest};

/// An authentication failure as the caller's protocol family spells it: query/XML services say
/// `InvalidClientTokenId`, JSON services `UnrecognizedClientException`.
pub fn api_error(e: &AuthError, json: bool) -> ApiError {
    let code = if json { e.json_code() } else { e.code() };
    ApiError::new(e.status(), code, e.message())
}

/// An error of `kind` with AWS's message for it.
pub fn error_of(kind: AuthErrorCode, json: bool) -> ApiError {
    let e = match kind {
        AuthErrorCode::InvalidClientTokenId => AuthError::invalid_client_token_id(),
        AuthErrorCode::ExpiredToken => AuthError::expired_token(),
        AuthErrorCode::MissingAuthenticationToken => AuthError::missing_authentication_token(),
        other => AuthError::new(other, other.as_str()),
    };
    api_error(&e, json)
}

fn signed(req: &HttpRequest) -> SignedRequest<'_> {
    SignedRequest {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        payload: Payload::Bytes(&req.body),
    }
}

/// The SigV4 credentials a request claims, `None` if unsigned; a malformed signature is an
/// `IncompleteSignature` error.
pub fn parse(req: &HttpRequest, json: bool) -> Result<Option<sigv4::Credentials>, ApiError> {
    sigv4::parse(&signed(req)).map_err(|e| api_error(&e, json))
}

/// Verify the request's SigV4 signature with `secret`.
pub fn verify(
    req: &HttpRequest,
    parsed: &sigv4::Credentials,
    secret: &str,
    json: bool,
) -> Result<(), ApiError> {
    sigv4::verify(
        parsed,
        &signed(req),
        secret,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| api_error(&e, json))
}
