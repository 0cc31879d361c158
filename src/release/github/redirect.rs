//! GitHub answers requests for a renamed or transferred repository's old
//! name with a redirect to `/repositories/{id}/…`: 301 for GET, 307 for the
//! other methods (so that clients repeat them unchanged). relbot follows
//! them for every method, with the same method and body, on the API's own
//! host only (credentials never go elsewhere).
//!
//! octocrab's `follow-redirect` feature is not used for this: its policy
//! (tower-http's standard one) follows a 301 for GET, but turns a redirected
//! POST into a GET, and does not repeat a 307 that carries a body (it cannot
//! clone octocrab's request body), so every write to a moved repository
//! would still fail; and it hides the redirect, which relbot reports so the
//! configuration gets updated (see [`super::location`]).

use http::Method;
use serde_json::Value;

use super::error::GitHubError;
use super::transport::{RawResponse, Sender};

/// A move is one hop; a few more allow for a repository moved twice.
const MAX_REDIRECTS: usize = 3;

pub(crate) async fn follow(
    sender: &Sender<'_>,
    origin: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<RawResponse, GitHubError> {
    let refuse = |detail: String| GitHubError::Redirect {
        method: method.to_string(),
        path: path.to_string(),
        detail,
    };
    let mut current = path.to_string();
    for hop in 0..=MAX_REDIRECTS {
        let mut response = sender.send(method.clone(), &current, body).await?;
        if !matches!(response.status, 301 | 302 | 307 | 308) {
            response.redirected = hop > 0;
            return Ok(response);
        }
        let location = response
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refuse(format!("answered {} without a Location", response.status)))?;
        let next = same_origin_path(origin, location).map_err(refuse)?;
        tracing::debug!(%method, from = %current, to = %next, status = response.status, "following GitHub's redirect");
        current = next;
    }
    Err(refuse(format!(
        "redirected more than {MAX_REDIRECTS} times"
    )))
}

/// The path and query to request for `location`, which must stay on
/// `origin` (`scheme://host[:port]` of the configured API URL).
pub(crate) fn same_origin_path(origin: &str, location: &str) -> Result<String, String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok(location.to_string());
    }
    let target: http::Uri = location
        .parse()
        .map_err(|_| format!("redirected to {location:?}, which is not a URL"))?;
    let target_origin = match (target.scheme_str(), target.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
        _ => return Err(format!("redirected to {location:?}, which is not a URL")),
    };
    if !target_origin.eq_ignore_ascii_case(origin) {
        return Err(format!(
            "redirected to another host ({target_origin}); relbot does not send its credentials there"
        ));
    }
    Ok(target
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into()))
}

/// `scheme://host[:port]` of an API URL.
pub(crate) fn origin_of(api_url: &str) -> Option<String> {
    let uri: http::Uri = api_url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_api_host() {
        let origin = "https://api.github.com";
        assert_eq!(
            same_origin_path(
                origin,
                "https://api.github.com/repositories/42/pulls?state=all"
            ),
            Ok("/repositories/42/pulls?state=all".to_string())
        );
        assert_eq!(
            same_origin_path(origin, "/repositories/42/pulls"),
            Ok("/repositories/42/pulls".to_string())
        );
        let err = same_origin_path(origin, "https://evil.example/repositories/42").unwrap_err();
        assert!(err.contains("another host (https://evil.example)"), "{err}");
        assert!(same_origin_path(origin, "//evil.example/x").is_err());
        assert!(
            same_origin_path(origin, "http://api.github.com/x").is_err(),
            "no downgrade"
        );
    }

    #[test]
    fn origin_of_keeps_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://ghe.example.com/api/v3").as_deref(),
            Some("https://ghe.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }
}
