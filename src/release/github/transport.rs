//! One request with GitHub's failure modes handled: bounded retries with
//! exponential backoff for 5xx and connection errors, and capped waits for
//! primary and secondary rate limits.
//!
//! Retrying a POST can replay one GitHub did process before failing (a 502
//! after the write); callers are written for that: PR creation reuses the PR
//! on "already exists", closing and labelling are idempotent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method};
use octocrab::Octocrab;
use rand::Rng;
use serde_json::Value;

use super::error::{GitHubError, hint_for};
use super::{GitHubStats, RetryPolicy};

/// A response as relbot reads it.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// GitHub redirected the request (a renamed or transferred repository)
    /// and this is the answer from the new location.
    pub redirected: bool,
}

impl RawResponse {
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<T, GitHubError> {
        serde_json::from_str(&self.body).map_err(|e| GitHubError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// GitHub's explanation: `message` plus each `errors[].message`.
    pub fn message(&self) -> String {
        error_message(&self.body)
    }

    pub fn into_error(self, method: &Method, path: &str) -> GitHubError {
        GitHubError::Status {
            method: method.to_string(),
            path: path.to_string(),
            status: self.status,
            message: self.message(),
            hint: hint_for(self.status),
        }
    }
}

pub(crate) fn error_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        let trimmed: String = body.chars().take(200).collect();
        return if trimmed.is_empty() {
            "(empty body)".into()
        } else {
            trimmed
        };
    };
    let mut parts: Vec<String> = value
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .into_iter()
        .collect();
    for err in value
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match err.get("message").and_then(Value::as_str) {
            Some(m) => parts.push(m.to_string()),
            None => {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("");
                parts.push(
                    format!("{} {} {}", field("resource"), field("field"), field("code"))
                        .trim()
                        .to_string(),
                );
            }
        }
    }
    if parts.is_empty() {
        body.chars().take(200).collect()
    } else {
        parts.join("; ")
    }
}

/// How long GitHub asks us to wait, if this response is a rate limit.
/// `now` is seconds since the epoch (a parameter so tests are exact).
pub(crate) fn rate_limit_wait(
    status: u16,
    headers: &HeaderMap,
    body: &str,
    now: u64,
) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining") == Some("0")
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok())
    {
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    let message = error_message(body).to_ascii_lowercase();
    // GitHub's advice for a secondary limit without headers: wait a minute.
    if status == 429
        || message.contains("secondary rate limit")
        || message.contains("abuse detection")
    {
        return Some(Duration::from_secs(60));
    }
    None
}

fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.backoff_base.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(policy.backoff_max);
    // Up to 25% jitter so replicas do not retry in step.
    let jitter = rand::rng().random_range(0.0..=0.25);
    capped.mul_f64(1.0 + jitter)
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What one request is sent with.
pub(crate) struct Sender<'a> {
    pub crab: &'a Octocrab,
    /// An `Authorization` header to send instead of the client's own.
    pub authorization: Option<HeaderValue>,
    pub policy: &'a RetryPolicy,
    pub stats: &'a GitHubStats,
}

impl Sender<'_> {
    /// Sends with retries and rate-limit waits; redirects are answers here.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<RawResponse, GitHubError> {
        send(self, method, path, body).await
    }
}

async fn send(
    sender: &Sender<'_>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<RawResponse, GitHubError> {
    let (policy, stats) = (sender.policy, sender.stats);
    let mut failures = 0u32;
    let mut waits = 0u32;
    loop {
        GitHubStats::bump(&stats.requests);
        let outcome = send_once(sender, &method, path, body).await;
        let retry_reason = match outcome {
            Err(AttemptError::AppToken(detail)) => return Err(GitHubError::AppAuth { detail }),
            Err(AttemptError::Transport(detail)) => {
                failures += 1;
                if failures >= policy.max_attempts {
                    return Err(GitHubError::Transport {
                        method: method.to_string(),
                        path: path.to_string(),
                        detail,
                    });
                }
                detail
            }
            Ok(response) => {
                if let Some(wait) = rate_limit_wait(
                    response.status,
                    &response.headers,
                    &response.body,
                    now_epoch(),
                ) {
                    if wait > policy.rate_limit_cap || waits >= policy.max_rate_limit_waits {
                        return Err(GitHubError::RateLimited {
                            method: method.to_string(),
                            path: path.to_string(),
                            wait,
                            cap: policy.rate_limit_cap,
                        });
                    }
                    waits += 1;
                    GitHubStats::bump(&stats.rate_limit_waits);
                    tracing::warn!(%method, path, wait_secs = wait.as_secs_f64(), "GitHub rate limit; waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                if !matches!(response.status, 500 | 502 | 503 | 504) {
                    return Ok(response);
                }
                failures += 1;
                if failures >= policy.max_attempts {
                    return Err(GitHubError::RetriesExhausted {
                        method: method.to_string(),
                        path: path.to_string(),
                        status: response.status,
                        attempts: failures,
                        message: response.message(),
                    });
                }
                format!("status {}", response.status)
            }
        };
        GitHubStats::bump(&stats.retries);
        let delay = backoff(policy, failures - 1);
        tracing::warn!(%method, path, reason = %retry_reason, delay_ms = delay.as_millis() as u64, "GitHub request failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// One attempt. Paths are relative so octocrab attaches credentials and the
/// configured base URL; errors are rendered without request headers.
pub(crate) enum AttemptError {
    /// The request did not get an answer (retryable).
    Transport(String),
    /// GitHub refused to mint an App installation token (not retryable).
    AppToken(String),
}

async fn send_once(
    sender: &Sender<'_>,
    method: &Method,
    path: &str,
    body: Option<&Value>,
) -> Result<RawResponse, AttemptError> {
    let crab = sender.crab;
    let uri = http::Uri::try_from(path)
        .map_err(|e| AttemptError::Transport(format!("invalid path: {e}")))?;
    let result = match (&sender.authorization, method) {
        (Some(authorization), _) => {
            let request = http::Request::builder()
                .method(method.clone())
                .uri(uri)
                .header(http::header::AUTHORIZATION, authorization.clone());
            match crab.build_request(request, body) {
                Ok(request) => crab.execute(request).await,
                Err(e) => Err(e),
            }
        }
        (None, &Method::GET) => crab._get(uri).await,
        (None, &Method::POST) => crab._post(uri, body).await,
        (None, &Method::PATCH) => crab._patch(uri, body).await,
        (None, &Method::PUT) => crab._put(uri, body).await,
        (None, &Method::DELETE) => crab._delete(uri, body).await,
        _ => {
            return Err(AttemptError::Transport(format!(
                "unsupported method {method}"
            )));
        }
    };
    let response = result.map_err(|e| describe_octocrab_error(&e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = crab
        .body_to_string(response)
        .await
        .map_err(|e| describe_octocrab_error(&e))?;
    Ok(RawResponse {
        status,
        headers,
        body,
        redirected: false,
    })
}

/// octocrab's `Display` for some variants is just "GitHub"; say what
/// happened. The only GitHub answers surfacing here come from minting a GitHub
/// App installation token (every other request returns its raw response).
pub(crate) fn describe_octocrab_error(error: &octocrab::Error) -> AttemptError {
    if let octocrab::Error::GitHub { source, .. } = error {
        let status = source.status_code.as_u16();
        return AttemptError::AppToken(format!(
            "minting an installation token answered {status}: {} (check RELBOT_GITHUB_APP_ID, RELBOT_GITHUB_APP_INSTALLATION_ID and the App's private key)",
            source.message
        ));
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    AttemptError::Transport(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn retry_after_wins() {
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            rate_limit_wait(403, &h, "{}", 0),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            rate_limit_wait(429, &h, "{}", 0),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn primary_limit_waits_until_reset() {
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &h, "{}", 990),
            Some(Duration::from_secs(10))
        );
        // A reset already past still waits a moment rather than spinning.
        assert_eq!(
            rate_limit_wait(403, &h, "{}", 2000),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn secondary_limit_without_headers_waits_a_minute() {
        let body = r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
        assert_eq!(
            rate_limit_wait(403, &HeaderMap::new(), body, 0),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn plain_forbidden_is_not_a_rate_limit() {
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        let body = r#"{"message":"Resource not accessible by integration"}"#;
        assert_eq!(rate_limit_wait(403, &h, body, 0), None);
        assert_eq!(
            rate_limit_wait(500, &headers(&[("retry-after", "1")]), "", 0),
            None
        );
    }

    #[test]
    fn error_message_joins_github_errors() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:relbot/x."}]}"#;
        assert_eq!(
            error_message(body),
            "Validation Failed; A pull request already exists for acme:relbot/x."
        );
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"base","code":"invalid"}]}"#;
        assert_eq!(
            error_message(body),
            "Validation Failed; PullRequest base invalid"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(error_message(""), "(empty body)");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            ..Default::default()
        };
        let first = backoff(&policy, 0);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let late = backoff(&policy, 10);
        assert!(late >= Duration::from_millis(300) && late <= Duration::from_millis(375));
    }
}
