//! Image references as people write them (`nginx`, `ghcr.io/acme/api:1.2`,
//! `registry.local:5000/team/app@sha256:…`), normalised the way docker does.
//!
//! Rules (distribution's `reference` normalisation):
//! - the first path component is a registry host when it contains `.` or
//!   `:`, or is `localhost`; otherwise the image lives on Docker Hub;
//! - Docker Hub is spelled `docker.io` (aliases `index.docker.io`,
//!   `registry-1.docker.io`), and its single-name images live under
//!   `library/` (`nginx` → `docker.io/library/nginx`); its API host is
//!   `registry-1.docker.io`;
//! - `:` after the last `/` starts the tag (so `host:5000/app` has no tag),
//!   `@` starts the digest.

use std::fmt;

/// Docker Hub's canonical name, as shown to users and used for credentials.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000` (lower-cased).
    pub registry: String,
    /// `library/nginx`, `acme/api`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let fail = |reason: &str| ReferenceError {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let text_trimmed = text.trim();
        if text_trimmed.is_empty() {
            return Err(fail("empty reference"));
        }
        let (name_and_tag, digest) = match text_trimmed.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(|r| fail(&r))?;
                (name, Some(digest.to_string()))
            }
            None => (text_trimmed, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (
                    &name_and_tag[..at],
                    Some(name_and_tag[at + 1..].to_string()),
                )
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(|r| fail(&r))?;
        }
        let (registry, repository) = split_registry(name);
        let registry = normalise_registry(&registry);
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|r| fail(&r))?;
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host (and port) whose `/v2/` API serves this image.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `docker.io/library/nginx` — no tag, no digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image with another tag (digest dropped).
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    }
}

/// Folds Docker Hub's aliases into `docker.io` and lower-cases hosts.
pub fn normalise_registry(host: &str) -> String {
    let host = host.trim().trim_end_matches('/').to_ascii_lowercase();
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(&host);
    // `https://index.docker.io/v1/` is how docker's config.json names Docker Hub.
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    }
}

fn validate_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("missing repository name".into());
    }
    for component in repository.split('/') {
        let ok = !component.is_empty()
            && component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !ok {
            return Err(format!(
                "repository component {component:?} must be lower-case letters, digits and . _ - (not at either end)"
            ));
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-128 of letters, digits, _ . - (not starting with . or -)"
        ))
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let bad = || format!("digest {digest:?} must look like sha256:<64 hex digits>");
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    let ok = !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        })
        && hex.len() >= 32
        && hex.chars().all(|c| c.is_ascii_hexdigit());
    if ok { Ok(()) } else { Err(bad()) }
}

/// True for hosts docker reaches over plain HTTP without being told:
/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        }
    };
    if without_port.eq_ignore_ascii_case("localhost") {
        return true;
    }
    without_port
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_hub_single_names_live_under_library() {
        let r = parse("nginx");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.tag, None);
        assert_eq!(
            parse("nginx:1.27").to_string(),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(parse("docker.io/nginx").repository, "library/nginx");
        assert_eq!(parse("index.docker.io/library/nginx").registry, "docker.io");
    }

    #[test]
    fn docker_hub_user_images() {
        let r = parse("docker.io/ahuora/django-api:django-api-0.0.17");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "ahuora/django-api");
        assert_eq!(r.tag.as_deref(), Some("django-api-0.0.17"));
        assert_eq!(
            parse("ahuora/django-api").name(),
            "docker.io/ahuora/django-api"
        );
    }

    #[test]
    fn other_hosts_and_ports() {
        let r = parse("ghcr.io/acme/tools/api:v1.2.3");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("ghcr.io", "acme/tools/api")
        );
        assert_eq!(r.api_host(), "ghcr.io");
        let r = parse("registry.local:5000/team/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("registry.local:5000", "team/app", None)
        );
        let r = parse("127.0.0.1:5000/app:1.0.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "app", Some("1.0.0"))
        );
        assert_eq!(parse("localhost/app").registry, "localhost");
        assert_eq!(
            parse("quay.io/prometheus/node-exporter:v1.8.0").repository,
            "prometheus/node-exporter"
        );
    }

    #[test]
    fn digests_with_and_without_tags() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("nginx:1.2.3@{d}"));
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.2.3@{d}"));
        let r = parse(&format!("registry.local:5000/app@{d}"));
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("registry.local:5000", None)
        );
        assert!(ImageRef::parse("nginx@sha256:xyz").is_err());
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-bad",
            "ghcr.io/",
            "a//b",
            "nginx:tag with space",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = ImageRef::parse("Nginx").unwrap_err().to_string();
        assert!(e.contains("\"Nginx\"") && e.contains("lower-case"), "{e}");
    }

    #[test]
    fn loopback_hosts_use_plain_http() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.local:5000",
            "10.0.0.1:5000",
            "ghcr.io",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn registry_aliases_fold_into_docker_io() {
        assert_eq!(
            normalise_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalise_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalise_registry("GHCR.io"), "ghcr.io");
        assert_eq!(
            normalise_registry("http://registry.local:5000"),
            "registry.local:5000"
        );
    }
}
