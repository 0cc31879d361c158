//! What the client has learnt about authenticating: each origin's scheme
//! (from its 401), the scope it really wants, and bearer tokens cached until
//! they expire. The client owns one [`AuthState`]; `auth.rs` fills it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A bearer token; `Debug` never shows it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires_at: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Which bearer token: the one `realm` issues for `service` and `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub realm: String,
    pub service: String,
    pub scope: String,
}

impl TokenKey {
    pub fn new(realm: &str, service: &str, scope: &str) -> Self {
        Self {
            realm: realm.to_string(),
            service: service.to_string(),
            scope: scope.to_string(),
        }
    }
}

/// Tokens by [`TokenKey`], kept until shortly before `expires_in` runs out.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<TokenKey, Token>,
}

/// The distribution spec's default when a token response has no `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

impl TokenCache {
    pub fn get(&self, key: &TokenKey, now: Instant) -> Option<&Token> {
        self.tokens.get(key).filter(|t| t.expires_at > now)
    }

    /// Drops a token the registry refused.
    pub fn forget(&mut self, value: &str) {
        self.tokens.retain(|_, token| token.value != value);
    }

    /// Stores a token that the server said lives `lifetime`; we stop using it a
    /// little early (10 %, at most 30 s) so a request never races its expiry.
    pub fn insert(&mut self, key: TokenKey, value: String, lifetime: Duration, now: Instant) {
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        let token = Token {
            value,
            expires_at: now + lifetime.saturating_sub(margin),
        };
        self.tokens.insert(key, token);
    }
}

/// The token endpoint's answer; `token` or `access_token` (OAuth2 name).
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<(String, Duration)> {
        let value = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let lifetime = self
            .expires_in
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Some((value, lifetime))
    }
}

/// How a registry origin wants to be authenticated, learned from its 401.
#[derive(Debug, Clone)]
pub enum HostAuth {
    Basic,
    Bearer { realm: String, service: String },
}

#[derive(Debug, Default)]
struct Learnt {
    host_auth: HashMap<String, HostAuth>,
    tokens: TokenCache,
    /// (origin, our scope) → the scope the registry's challenge named instead.
    scopes: HashMap<(String, String), String>,
}

/// Schemes, scopes and tokens per origin, shared by every request of one
/// client; safe to use from many tasks.
#[derive(Debug, Default)]
pub struct AuthState {
    learnt: Mutex<Learnt>,
}

impl AuthState {
    /// The scheme `origin` asked for, if it has, and the scope to ask it for
    /// when we want `scope`.
    pub fn scheme_and_scope(&self, origin: &str, scope: &str) -> (Option<HostAuth>, String) {
        let learnt = self.lock();
        let wanted = learnt
            .scopes
            .get(&(origin.to_string(), scope.to_string()))
            .cloned();
        (
            learnt.host_auth.get(origin).cloned(),
            wanted.unwrap_or_else(|| scope.to_string()),
        )
    }

    /// A bearer token still good at `now`.
    pub fn token(&self, key: &TokenKey, now: Instant) -> Option<String> {
        self.lock().tokens.get(key, now).map(|t| t.value.clone())
    }

    pub fn store_token(&self, key: TokenKey, value: String, lifetime: Duration, now: Instant) {
        self.lock().tokens.insert(key, value, lifetime, now);
    }

    /// Drops a token the registry refused.
    pub fn forget_token(&self, value: &str) {
        self.lock().tokens.forget(value);
    }

    /// `origin` speaks bearer tokens from `realm`; when its challenge named a
    /// scope other than `our_scope`, that one is asked for from now on.
    pub fn learn_bearer(
        &self,
        origin: &str,
        realm: String,
        service: String,
        our_scope: &str,
        challenge_scope: Option<String>,
    ) {
        let mut learnt = self.lock();
        learnt
            .host_auth
            .insert(origin.to_string(), HostAuth::Bearer { realm, service });
        if let Some(wanted) = challenge_scope.filter(|s| s != our_scope) {
            learnt
                .scopes
                .insert((origin.to_string(), our_scope.to_string()), wanted);
        }
    }

    pub fn learn_basic(&self, origin: &str) {
        self.lock()
            .host_auth
            .insert(origin.to_string(), HostAuth::Basic);
    }

    fn lock(&self) -> MutexGuard<'_, Learnt> {
        // Caches only; a panic elsewhere cannot leave them invalid.
        self.learnt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_tokens() {
        let token = Token {
            value: "secret-token".into(),
            expires_at: Instant::now(),
        };
        assert!(!format!("{token:?}").contains("secret-token"));
        let state = AuthState::default();
        state.store_token(
            TokenKey::new("r", "s", "p"),
            "secret-token".into(),
            Duration::from_secs(60),
            Instant::now(),
        );
        assert!(!format!("{state:?}").contains("secret-token"));
    }

    #[test]
    fn tokens_expire_early_and_default_to_sixty_seconds() {
        let now = Instant::now();
        let mut cache = TokenCache::default();
        let a = TokenKey::new("r", "s", "repository:a:pull");
        cache.insert(a.clone(), "t".into(), Duration::from_secs(300), now);
        assert!(cache.get(&a, now + Duration::from_secs(269)).is_some());
        assert!(cache.get(&a, now + Duration::from_secs(271)).is_none());
        let b = TokenKey::new("r", "s", "repository:b:pull");
        assert!(cache.get(&b, now).is_none());
        let resp: TokenResponse = serde_json::from_str(r#"{"access_token":"x"}"#).unwrap();
        assert_eq!(
            resp.into_token(),
            Some(("x".into(), DEFAULT_TOKEN_LIFETIME))
        );
    }
}
