//! Who may send a webhook: GitHub's HMAC signature, the registry's path
//! token, the secrets behind them, and the replay cache of delivery ids.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A webhook secret or token. Never printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `NAME` from the environment, else the contents of the file named by
    /// `NAME_FILE` (a mounted Kubernetes Secret), trimmed of a final newline.
    pub fn from_env(name: &str) -> Result<Option<Secret>, std::io::Error> {
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            return Ok(Some(Secret(value)));
        }
        match std::env::var(format!("{name}_FILE")) {
            Ok(path) if !path.is_empty() => {
                // The io error alone ("No such file or directory") names
                // neither the file nor the variable that pointed at it.
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{name}_FILE={path}: {e}"))
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                Ok((!value.is_empty()).then_some(Secret(value)))
            }
            _ => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Environment variable holding the GitHub webhook secret (or `…_FILE`).
pub const GITHUB_SECRET_ENV: &str = "RELBOT_GITHUB_WEBHOOK_SECRET";
/// Environment variable holding the registry webhook path token (or `…_FILE`).
pub const REGISTRY_TOKEN_ENV: &str = "RELBOT_REGISTRY_WEBHOOK_TOKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header (is the webhook secret set in GitHub?)")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error(
        "X-Hub-Signature-256 does not match the body (is the webhook secret the same on both sides?)"
    )]
    Mismatch,
    #[error("no webhook secret configured: set {GITHUB_SECRET_ENV} (or {GITHUB_SECRET_ENV}_FILE)")]
    NotConfigured,
}

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the
/// raw body with the shared secret). The comparison is constant-time.
pub fn verify_github_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::NotConfigured)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value GitHub would send for `body` (tests, and clients of the
/// "trigger by API" that want to sign their own requests).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// Compares two tokens in time independent of where they differ (and of
/// their lengths: both are hashed to 32 bytes first).
pub fn tokens_equal(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Recently seen `X-GitHub-Delivery` ids, oldest evicted first.
#[derive(Debug)]
pub struct DeliveryCache {
    capacity: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl DeliveryCache {
    pub fn new(capacity: usize) -> Self {
        DeliveryCache {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Remembers `id`; false when it was already seen (a replay).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_rejections() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let header = github_signature(b"s3cret", body);
        assert!(verify_github_signature(b"s3cret", body, Some(&header)).is_ok());
        assert_eq!(
            verify_github_signature(b"other", body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", b"{}", Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, Some("sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_github_signature(b"s3cret", body, Some("sha256=abcd")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn signature_matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(
            verify_github_signature(
                b"It's a Secret to Everybody",
                b"Hello, World!",
                Some(header)
            )
            .is_ok()
        );
    }

    #[test]
    fn tokens_compare_by_value() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn delivery_cache_remembers_and_evicts() {
        let mut cache = DeliveryCache::new(2);
        assert!(cache.first_time("a"));
        assert!(!cache.first_time("a"));
        assert!(cache.first_time("b"));
        assert!(cache.first_time("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.first_time("a"), "evicted ids are forgotten");
    }
}
