//! Signature checks of a request in strict mode (the algorithms live in fc-auth), and the
//! translation of authentication failures into the error codes each protocol family uses.

use fc_auth::sigv2::{self, V2Query};
use fc_auth::sigv4::{self, Payload, SignedRequest};
use fc_auth::{AuthError, AuthErrorCode};
use fc_protocol::{ApiError, HttpRequest};

/// The signature a request carries.
pub enum Signature {
    V4(sigv4::Credentials),
    /// SigV2 query authentication, which boto3 still produces for some S3 presigned URLs.
    V2(V2Query),
    None,
}

impl Signature {
    pub fn access_key(&self) -> Option<&str> {
        match self {
            Signature::V4(c) => Some(&c.access_key_id),
            Signature::V2(q) => Some(&q.access_key_id),
            Signature::None => None,
        }
    }

    pub fn session_token(&self) -> Option<&str> {
        match self {
            Signature::V4(c) => c.session_token.as_deref(),
            _ => None,
        }
    }
}

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

/// The request as SigV4 sees it. A streamed body is not in memory: its hash is the one the
/// client declared in `x-amz-content-sha256` (the handler checks the bytes against it).
fn signed(req: &HttpRequest, streamed: bool) -> SignedRequest<'_> {
    let payload = if streamed {
        Payload::Sha256Hex(
            req.header("x-amz-content-sha256")
                .unwrap_or("UNSIGNED-PAYLOAD"),
        )
    } else {
        Payload::Bytes(&req.body)
    };
    SignedRequest {
        method: &req.method,
        path: &req.path,
        query: &req.query,
        headers: &req.headers,
        payload,
    }
}

/// The signature a request claims; a malformed SigV4 signature is an `IncompleteSignature`.
pub fn parse(req: &HttpRequest, json: bool) -> Result<Signature, ApiError> {
    if req.header("authorization").is_none() && !req.query.contains("X-Amz-Algorithm=") {
        if let Some(q) = sigv2::parse_query(&req.query) {
            return Ok(Signature::V2(q));
        }
    }
    Ok(
        match sigv4::parse(&signed(req, false)).map_err(|e| api_error(&e, json))? {
            Some(c) => Signature::V4(c),
            None => Signature::None,
        },
    )
}

/// Verify the request's signature with `secret`.
pub fn verify(
    req: &HttpRequest,
    sig: &Signature,
    secret: &str,
    json: bool,
    streamed: bool,
) -> Result<(), ApiError> {
    let now = time::OffsetDateTime::now_utc();
    match sig {
        Signature::V4(c) => {
            sigv4::verify(c, &signed(req, streamed), secret, now).map_err(|e| api_error(&e, json))
        }
        Signature::V2(q) => {
            sigv2::verify_query(&signed(req, streamed), q, secret, now.unix_timestamp())
                .map_err(|e| api_error(&e, json))
        }
        Signature::None => Err(error_of(AuthErrorCode::MissingAuthenticationToken, json)),
    }
}
