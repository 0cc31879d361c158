//! What can go wrong talking to a registry, in words that say what to do.

use std::time::Duration;

use reqwest::Url;

use super::credentials::{CredentialsError, env_key};
use crate::image::{self, ImageRef, ReferenceError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(
        "cannot reach registry at {url}: {}; check the host name, port and network",
        crate::error_chain::deepest_cause(.source)
    )]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{image}: registry {host} refused access ({reason}); set RELBOT_REGISTRY_{env_key}_USERNAME and \
         RELBOT_REGISTRY_{env_key}_PASSWORD, or add {host} to the docker config.json"
    )]
    Unauthorized {
        image: String,
        host: String,
        env_key: String,
        reason: String,
    },
    #[error("{image}: token service {realm} answered {reason}; check the credentials for {host}")]
    Token {
        image: String,
        host: String,
        realm: String,
        reason: String,
    },
    #[error(
        "{image}: {what} not found at {url}; check the image name and tag (private repositories also answer 404 \
         without credentials)"
    )]
    NotFound {
        image: String,
        what: String,
        url: String,
    },
    #[error(
        "registry {host} is rate-limiting us{}; not retrying now so we do not make it worse",
        retry_after.map(|d| format!(" (it asks to wait {}s)", d.as_secs())).unwrap_or_default()
    )]
    RateLimited {
        host: String,
        retry_after: Option<Duration>,
    },
    #[error("{url} answered {status} after {attempts} attempt(s): {body}")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
        body: String,
    },
    #[error(
        "{url}: the next page link points to another origin ({next}); not followed so credentials stay with \
         this registry"
    )]
    CrossOriginLink { url: String, next: String },
    #[error("{image}: more than {max_pages} pages of tags; raise max_pages or the page size")]
    TooManyPages { image: String, max_pages: usize },
    #[error("{url}: the next page link loops back to a page already read")]
    PaginationLoop { url: String },
    #[error("{url}: unexpected answer: {reason}")]
    InvalidResponse { url: String, reason: String },
}

/// The registry (or its token service) would not let us in; names the
/// variables that would.
pub(super) fn unauthorized(image: &ImageRef, host: &str, reason: &str) -> RegistryError {
    RegistryError::Unauthorized {
        image: image.name(),
        host: image::normalise_registry(host),
        env_key: env_key(host),
        reason: reason.to_string(),
    }
}

/// The registry (or its token service) at `url` could not be reached, or
/// broke off its answer.
pub(super) fn transport(
    url: &impl std::fmt::Display,
) -> impl FnOnce(reqwest::Error) -> RegistryError {
    let url = url.to_string();
    move |source| RegistryError::Transport { url, source }
}

pub(super) fn parse_url(text: &str) -> Result<Url, RegistryError> {
    Url::parse(text).map_err(|e| RegistryError::InvalidResponse {
        url: text.to_string(),
        reason: e.to_string(),
    })
}

pub(super) fn invalid(url: &Url, reason: &str) -> RegistryError {
    RegistryError::InvalidResponse {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

pub(super) async fn status_error(
    url: &Url,
    response: reqwest::Response,
    attempts: u32,
) -> RegistryError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    RegistryError::Status {
        url: url.to_string(),
        status,
        attempts,
        body: body.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_tell_what_to_do_without_secrets() {
        let e = RegistryError::Unauthorized {
            image: "ghcr.io/acme/api".into(),
            host: "ghcr.io".into(),
            env_key: "GHCR_IO".into(),
            reason: "HTTP 401".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("RELBOT_REGISTRY_GHCR_IO_USERNAME") && text.contains("ghcr.io/acme/api"),
            "{text}"
        );
        let e = RegistryError::RateLimited {
            host: "docker.io".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert!(e.to_string().contains("3600s"), "{e}");
    }
}
