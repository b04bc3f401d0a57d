//! Resource ids in the formats AWS uses.

use rand::Rng;

/// `n` random lowercase hex digits.
pub fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// An EC2-style id: `prefix-` and 17 hex digits (`i-0123456789abcdef0`, `vol-…`, `sg-…`).
pub fn ec2_id(prefix: &str) -> String {
    format!("{prefix}-{}", random_hex(17))
}

/// `n` random characters from `alphabet`.
pub fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A long-term access key id (`AKIA` + 16).
pub fn access_key_id() -> String {
    format!("AKIA{}", random_from(UPPER_ALNUM, 16))
}

/// A temporary (STS) access key id (`ASIA` + 16).
pub fn temporary_access_key_id() -> String {
    format!("ASIA{}", random_from(UPPER_ALNUM, 16))
}

/// A 40-character secret access key.
pub fn secret_access_key() -> String {
    random_from(SECRET_ALPHABET, 40)
}

/// An IAM unique id with the given 4-letter prefix (`AIDA` users, `AROA` roles, `AGPA` groups,
/// `ANPA` policies, `AIPA` instance profiles): prefix + 17 upper-case alphanumerics.
pub fn iam_unique_id(prefix: &str) -> String {
    format!("{prefix}{}", random_from(UPPER_ALNUM, 17))
}

/// A request id (UUID v4).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether `s` is `prefix-` followed by 8 or 17 lowercase hex digits.
pub fn is_ec2_id(s: &str, prefix: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    (rest.len() == 8 || rest.len() == 17)
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` is a 12-digit account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let id = ec2_id("i");
        assert_eq!(id.len(), 19);
        assert!(is_ec2_id(&id, "i"));
        assert!(!is_ec2_id("i-xyz", "i"));
        assert!(is_ec2_id("vol-12345678", "vol"));
        let ak = access_key_id();
        assert!(ak.starts_with("AKIA") && ak.len() == 20);
        assert_eq!(secret_access_key().len(), 40);
        assert_eq!(iam_unique_id("AROA").len(), 21);
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("12345678901a"));
    }
}
