//! `AuthError`: why a request was not authenticated, with AWS's error code, message and HTTP
//! status, so the protocol layer can answer the way the real service does.

use std::fmt;

/// The AWS error codes authentication can end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthErrorCode {
    /// The signature (or its scope or time) is wrong.
    SignatureDoesNotMatch,
    /// The `Authorization` header or presigned query is malformed or incomplete.
    IncompleteSignature,
    /// The access key id is unknown (query and JSON services).
    InvalidClientTokenId,
    /// The access key id is unknown (S3 wording).
    InvalidAccessKeyId,
    /// The request carries no authentication at all where some is required.
    MissingAuthenticationToken,
    /// Authenticated, but not allowed; also S3's answer to an expired presigned URL.
    AccessDenied,
    /// The session token has expired.
    ExpiredToken,
    /// S3: request time too far from the server's clock.
    RequestTimeTooSkewed,
    /// S3: a presigned URL's query parameters are missing or invalid.
    AuthorizationQueryParametersError,
    /// S3: e.g. two authentication mechanisms in one request.
    InvalidArgument,
    /// S3: the `x-amz-content-sha256` header does not match the body.
    XAmzContentSHA256Mismatch,
}

impl AuthErrorCode {
    /// The code as the query, XML and S3 protocols spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            AuthErrorCode::IncompleteSignature => "IncompleteSignature",
            AuthErrorCode::InvalidClientTokenId => "InvalidClientTokenId",
            AuthErrorCode::InvalidAccessKeyId => "InvalidAccessKeyId",
            AuthErrorCode::MissingAuthenticationToken => "MissingAuthenticationToken",
            AuthErrorCode::AccessDenied => "AccessDenied",
            AuthErrorCode::ExpiredToken => "ExpiredToken",
            AuthErrorCode::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            AuthErrorCode::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            AuthErrorCode::InvalidArgument => "InvalidArgument",
            AuthErrorCode::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The code as awsJson / rest-json services (ECR, Lambda, DynamoDB, ...) spell it.
    pub fn as_json_str(self) -> &'static str {
        match self {
            AuthErrorCode::SignatureDoesNotMatch => "InvalidSignatureException",
            AuthErrorCode::IncompleteSignature => "IncompleteSignatureException",
            AuthErrorCode::InvalidClientTokenId | AuthErrorCode::InvalidAccessKeyId => {
                "UnrecognizedClientException"
            }
            AuthErrorCode::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthErrorCode::AccessDenied => "AccessDeniedException",
            AuthErrorCode::ExpiredToken => "ExpiredTokenException",
            other => other.as_str(),
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(self) -> u16 {
        match self {
            AuthErrorCode::IncompleteSignature
            | AuthErrorCode::AuthorizationQueryParametersError
            | AuthErrorCode::InvalidArgument
            | AuthErrorCode::XAmzContentSHA256Mismatch => 400,
            _ => 403,
        }
    }
}

impl fmt::Display for AuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Authentication failed. `message()` is AWS's own wording for the case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct AuthError {
    kind: AuthErrorCode,
    message: String,
    canonical_request: Option<String>,
    string_to_sign: Option<String>,
}

/// AWS's message for a signature mismatch outside S3.
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match \
the signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
service documentation for details.";

/// S3's message for a signature mismatch.
pub const S3_SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not \
match the signature you provided. Check your key and signing method.";

impl AuthError {
    pub fn new(kind: AuthErrorCode, message: impl Into<String>) -> Self {
        AuthError {
            kind,
            message: message.into(),
            canonical_request: None,
            string_to_sign: None,
        }
    }

    /// The signature did not match; the wording depends on whether the service is S3.
    pub fn signature_does_not_match(service: &str) -> Self {
        let message = if is_s3(service) {
            S3_SIGNATURE_MISMATCH_MESSAGE
        } else {
            SIGNATURE_MISMATCH_MESSAGE
        };
        AuthError::new(AuthErrorCode::SignatureDoesNotMatch, message)
    }

    /// For the caller when the access key id is unknown (query/JSON services).
    pub fn invalid_client_token_id() -> Self {
        AuthError::new(
            AuthErrorCode::InvalidClientTokenId,
            "The security token included in the request is invalid.",
        )
    }

    /// For the caller when the access key id is unknown to S3.
    pub fn invalid_access_key_id() -> Self {
        AuthError::new(
            AuthErrorCode::InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    }

    /// For the caller when the access key id is unknown; picks S3's or everyone else's code.
    pub fn unknown_access_key(service: &str) -> Self {
        if is_s3(service) {
            AuthError::invalid_access_key_id()
        } else {
            AuthError::invalid_client_token_id()
        }
    }

    /// For the caller when a request has no authentication and the service requires some.
    pub fn missing_authentication_token() -> Self {
        AuthError::new(
            AuthErrorCode::MissingAuthenticationToken,
            "Request is missing Authentication Token",
        )
    }

    /// For the caller when the session token has expired.
    pub fn expired_token() -> Self {
        AuthError::new(
            AuthErrorCode::ExpiredToken,
            "The security token included in the request is expired",
        )
    }

    /// Access denied with the given message.
    pub fn access_denied(message: impl Into<String>) -> Self {
        AuthError::new(AuthErrorCode::AccessDenied, message)
    }

    /// Attach the server's canonical request and string to sign (S3 returns them).
    pub fn with_details(mut self, canonical_request: String, string_to_sign: String) -> Self {
        self.canonical_request = Some(canonical_request);
        self.string_to_sign = Some(string_to_sign);
        self
    }

    /// The error code enum.
    pub fn kind(&self) -> AuthErrorCode {
        self.kind
    }

    /// The AWS error code (query/XML spelling), e.g. `SignatureDoesNotMatch`.
    pub fn code(&self) -> &'static str {
        self.kind.as_str()
    }

    /// The AWS error code as JSON-protocol services spell it, e.g. `InvalidSignatureException`.
    pub fn json_code(&self) -> &'static str {
        self.kind.as_json_str()
    }

    /// AWS's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The canonical request the server computed, when the error is a signature mismatch.
    pub fn canonical_request(&self) -> Option<&str> {
        self.canonical_request.as_deref()
    }

    /// The string to sign the server computed, when the error is a signature mismatch.
    pub fn string_to_sign(&self) -> Option<&str> {
        self.string_to_sign.as_deref()
    }
}

pub(crate) fn is_s3(service: &str) -> bool {
    service.eq_ignore_ascii_case("s3") || service.eq_ignore_ascii_case("s3express")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let e = AuthError::signature_does_not_match("sts");
        assert_eq!(e.code(), "SignatureDoesNotMatch");
        assert_eq!(e.json_code(), "InvalidSignatureException");
        assert_eq!(e.status(), 403);
        assert_eq!(e.message(), SIGNATURE_MISMATCH_MESSAGE);
        let e = AuthError::signature_does_not_match("s3");
        assert_eq!(e.message(), S3_SIGNATURE_MISMATCH_MESSAGE);
        let e = AuthError::new(AuthErrorCode::IncompleteSignature, "x");
        assert_eq!(e.status(), 400);
        assert_eq!(
            AuthError::unknown_access_key("s3").code(),
            "InvalidAccessKeyId"
        );
        assert_eq!(
            AuthError::unknown_access_key("ecr").json_code(),
            "UnrecognizedClientException"
        );
        assert_eq!(AuthError::expired_token().status(), 403);
        assert_eq!(
            AuthError::missing_authentication_token().to_string(),
            "MissingAuthenticationToken: Request is missing Authentication Token"
        );
    }
}
