//! The webhook notification: a JSON POST with a Slack-compatible `text`
//! when an application fails, turns Degraded or recovers.
//!
//! The URL is a credential (whoever has a Slack incoming-webhook URL can
//! post to the channel), so it comes from `RELBOT_NOTIFY_WEBHOOK_URL` (or a
//! file named by `RELBOT_NOTIFY_WEBHOOK_URL_FILE`, a mounted Secret) and
//! never appears in a log or an error: failures name the host only.
//! Posting is best effort: a failure is logged and counted in
//! `relbot_notifications_total{result="failed"}`, never a reason to fail the
//! sync (nor retried: the next change of standing sends the next message).

use std::time::Duration;

use serde_json::{Value, json};

use super::standing::Change;
use crate::sync::result::SyncResult;

pub const URL_ENV: &str = "RELBOT_NOTIFY_WEBHOOK_URL";
pub const URL_FILE_ENV: &str = "RELBOT_NOTIFY_WEBHOOK_URL_FILE";
const TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook URL from the environment; an error names the variable, never
/// the value.
pub fn url_from_env(
    var: impl Fn(&str) -> Option<String>,
    read: impl Fn(&str) -> std::io::Result<String>,
) -> Result<url::Url, String> {
    let text = match (
        var(URL_ENV).filter(|v| !v.trim().is_empty()),
        var(URL_FILE_ENV),
    ) {
        (Some(url), _) => url,
        (None, Some(path)) if !path.is_empty() => {
            read(&path).map_err(|e| format!("cannot read {URL_FILE_ENV} ({path}): {e}"))?
        }
        _ => {
            return Err(format!(
                "notifications.webhook is on but neither {URL_ENV} nor {URL_FILE_ENV} is set"
            ));
        }
    };
    let url =
        url::Url::parse(text.trim()).map_err(|e| format!("{URL_ENV} is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(format!("{URL_ENV} must be an http(s) URL"));
    }
    Ok(url)
}

/// Where a URL points, for logs: scheme and host, no path or query (Slack's
/// secret is the path).
pub fn shown(url: &url::Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        url.host_str().unwrap_or("(no host)")
    )
}

/// The message for `change` of `result`'s application; `page` links to the
/// application's page when the status page's address is known.
pub fn message(change: Change, result: &SyncResult, page: Option<&str>) -> Value {
    let app = &result.application;
    let revision = result
        .revision
        .as_deref()
        .map(|r| &r[..r.len().min(12)])
        .unwrap_or("(no revision)");
    let why = if result.errors.is_empty() {
        crate::server::observed::unhealthy_objects(result)
            .iter()
            .take(3)
            .map(|o| format!("{}: {}", o.object, o.reason))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        result.errors.join("; ")
    };
    let why = crate::redact::redact_userinfo(&why);
    let mut text = match change {
        Change::Failed => format!("relbot: {app} failed to sync revision {revision}"),
        Change::Degraded => format!("relbot: {app} is Degraded at revision {revision}"),
        Change::Recovered { from } => format!(
            "relbot: {app} recovered: Healthy again at revision {revision} (was {})",
            from.as_str()
        ),
    };
    if !why.is_empty() && !matches!(change, Change::Recovered { .. }) {
        text.push_str(&format!(": {why}"));
    }
    if let Some(page) = page {
        text.push_str(&format!(" — {page}"));
    }
    json!({
        "text": text,
        "application": app,
        "event": change.as_str(),
        "revision": result.revision,
        "sync": match result.phase {
            crate::sync::result::RunPhase::Synced => "Synced",
            crate::sync::result::RunPhase::OutOfSync => "OutOfSync",
            crate::sync::result::RunPhase::Failed => "Failed",
        },
        "health": result.health.as_str(),
        "errors": result.errors.iter().map(|e| crate::redact::redact_userinfo(e)).collect::<Vec<_>>(),
        "url": page,
    })
}

/// Posts `body`; Err names the host and what went wrong, never the URL.
pub async fn post(client: &reqwest::Client, url: &url::Url, body: &Value) -> Result<(), String> {
    let response = client
        .post(url.clone())
        .timeout(TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| {
            let why = if e.is_timeout() {
                "no answer within 10 s".to_string()
            } else if e.is_connect() {
                "cannot connect".to_string()
            } else {
                "the request failed".to_string()
            };
            format!("notification to {} not sent: {why}", shown(url))
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "notification to {} refused: HTTP {}",
            shown(url),
            status.as_u16()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_comes_from_the_environment_and_errors_never_show_it() {
        let secret = "https://hooks.example.com/services/T0/B0/s3cr3t";
        let url = url_from_env(
            |k| (k == URL_ENV).then(|| secret.to_string()),
            |_| unreachable!(),
        )
        .unwrap();
        assert_eq!(shown(&url), "https://hooks.example.com");
        let from_file = url_from_env(
            |k| (k == URL_FILE_ENV).then(|| "/secrets/url".to_string()),
            |_| Ok(format!("{secret}\n")),
        )
        .unwrap();
        assert_eq!(from_file.as_str(), secret);
        let missing = url_from_env(|_| None, |_| unreachable!()).unwrap_err();
        assert!(missing.contains(URL_ENV), "{missing}");
        let bad = url_from_env(
            |k| (k == URL_ENV).then(|| "ftp://x/s3cr3t".to_string()),
            |_| unreachable!(),
        )
        .unwrap_err();
        assert!(!bad.contains("s3cr3t"), "{bad}");
        let unparsable = url_from_env(
            |k| (k == URL_ENV).then(|| "s3cr3t".to_string()),
            |_| unreachable!(),
        )
        .unwrap_err();
        assert!(!unparsable.contains("s3cr3t"), "{unparsable}");
    }
}
