//! Opaque, tamper-checked pagination tokens (`NextToken`, `Marker`).
//!
//! A token carries the position (usually the last key returned) and the operation it belongs
//! to, signed with HMAC-SHA256 under a key the server sets at start-up ([`set_key`]); a token
//! edited by hand, or used on another operation, is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::RwLock;

type HmacSha256 = Hmac<Sha256>;

static KEY: RwLock<Option<Vec<u8>>> = RwLock::new(None);

/// Set the signing key (the server persists one in its data directory so tokens survive a
/// restart). Without it, a fixed development key is used.
pub fn set_key(key: &[u8]) {
    if let Ok(mut k) = KEY.write() {
        *k = Some(key.to_vec());
    }
}

fn mac(data: &[u8]) -> Vec<u8> {
    let key = KEY
        .read()
        .ok()
        .and_then(|k| k.clone())
        .unwrap_or_else(|| b"ferrocloud-pagination".to_vec());
    let mut m = <HmacSha256 as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes()[..16].to_vec()
}

/// A token that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The pagination token is invalid or does not belong to this operation")]
pub struct InvalidToken;

/// Encode `position` for `scope` (e.g. `"logs:DescribeLogStreams:group"`).
pub fn encode(scope: &str, position: &str) -> String {
    let mut payload = Vec::with_capacity(position.len() + 16);
    payload.extend_from_slice(position.as_bytes());
    let mut signed = scope.as_bytes().to_vec();
    signed.push(0);
    signed.extend_from_slice(position.as_bytes());
    payload.extend_from_slice(&mac(&signed));
    URL_SAFE_NO_PAD.encode(payload)
}

/// Decode a token made by [`encode`] for the same `scope`.
pub fn decode(scope: &str, token: &str) -> Result<String, InvalidToken> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| InvalidToken)?;
    if raw.len() < 16 {
        return Err(InvalidToken);
    }
    let (pos, tag) = raw.split_at(raw.len() - 16);
    let mut signed = scope.as_bytes().to_vec();
    signed.push(0);
    signed.extend_from_slice(pos);
    let want = mac(&signed);
    // Constant-time comparison.
    let diff = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(InvalidToken);
    }
    String::from_utf8(pos.to_vec()).map_err(|_| InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tamper_checked() {
        let t = encode("logs:DescribeLogGroups", "group-0042");
        assert_eq!(
            decode("logs:DescribeLogGroups", &t).as_deref(),
            Ok("group-0042")
        );
        assert!(decode("logs:DescribeLogStreams", &t).is_err());
        let mut bad = t.clone().into_bytes();
        bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
        assert!(decode("logs:DescribeLogGroups", &String::from_utf8(bad).unwrap()).is_err());
        assert!(decode("logs:DescribeLogGroups", "!!!").is_err());
    }
}
