//! Image references as people write them (`nginx`, `ghcr.io/acme/api:1.2`,
//! `registry.local:5000/team/app@sha256:…`), normalised the way docker does.
//! The one place relbot splits, validates and compares image references:
//! the registry client, bump planning, manifest rewriting and webhook
//! routing all use it.
//!
//! Rules (distribution's `reference` normalisation):
//! - `@` starts the digest; `:` after the last `/` starts the tag (so
//!   `host:5000/app` has no tag) — see [`split_reference`];
//! - the first path component is a registry host when it contains `.` or
//!   `:`, or is `localhost`; otherwise the image lives on Docker Hub;
//! - Docker Hub is spelled `docker.io` (aliases `index.docker.io`,
//!   `registry-1.docker.io`), and its single-name images live under
//!   `library/` (`nginx` → `docker.io/library/nginx`); its API host is
//!   `registry-1.docker.io`;
//! - hosts are case-insensitive (kept lower-cased); repository paths are
//!   case-sensitive and must be lower-case, so `ghcr.io/Org/App` is refused
//!   rather than folded into `ghcr.io/org/app`.

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
    /// The same repository without tag or digest: what a policy watches.
    pub fn without_version(self) -> ImageRef {
        ImageRef {
            tag: None,
            digest: None,
            ..self
        }
    }

    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let fail = |reason: &str| ReferenceError {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let text_trimmed = text.trim();
        if text_trimmed.is_empty() {
            return Err(fail("empty reference"));
        }
        let SplitReference { name, tag, digest } = split_reference(text_trimmed);
        if let Some(digest) = digest {
            validate_digest(digest).map_err(|r| fail(&r))?;
        }
        if let Some(tag) = tag {
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
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// Whether `other` names the same repository, whatever its tag or
    /// digest: equal (normalised) registry and equal repository path.
    /// `localhost` and `127.0.0.1` (same port) count as one registry, since
    /// both name this machine's loopback registry.
    pub fn same_repository(&self, other: &ImageRef) -> bool {
        self.repository == other.repository
            && loopback_alias(&self.registry) == loopback_alias(&other.registry)
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

/// Whether two references as written name the same repository (see
/// [`ImageRef::same_repository`]): `nginx`, `docker.io/library/nginx` and
/// `index.docker.io/library/nginx:1.2` all do. False when either is not a
/// valid reference.
pub fn same_repository(a: &str, b: &str) -> bool {
    match (ImageRef::parse(a), ImageRef::parse(b)) {
        (Ok(a), Ok(b)) => a.same_repository(&b),
        _ => false,
    }
}

/// A reference split as written, without validation or normalisation; the
/// parts borrow from the text, so `name.len()` is the byte offset where
/// `:tag` / `@digest` begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitReference<'a> {
    /// Everything before the tag and digest: `registry.local:5000/app`.
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Splits `host:port/path:tag@digest`. The first `@` starts the digest; a
/// `:` starts a tag only after the last `/`, so a registry port is not
/// mistaken for one.
pub fn split_reference(text: &str) -> SplitReference<'_> {
    let (name_and_tag, digest) = match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    };
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
        }
        None => (name_and_tag, None),
    };
    SplitReference { name, tag, digest }
}

/// `localhost[:port]` → `127.0.0.1[:port]`, for comparison only.
fn loopback_alias(registry: &str) -> std::borrow::Cow<'_, str> {
    match registry.strip_prefix("localhost") {
        Some("") => "127.0.0.1".into(),
        Some(port) if port.starts_with(':') => format!("127.0.0.1{port}").into(),
        _ => registry.into(),
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

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Nothing
/// else (`#`, quotes, spaces, newlines) can be in a valid tag, so one is
/// safe to write into YAML.
pub fn is_valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Docker's digest grammar: `algorithm:hex`, at least 32 hex digits
/// (`sha256:<64 hex>`).
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        })
        && hex.len() >= 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-128 of letters, digits, _ . - (not starting with . or -)"
        ))
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    if is_valid_digest(digest) {
        Ok(())
    } else {
        Err(format!(
            "digest {digest:?} must look like sha256:<64 hex digits>"
        ))
    }
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
    fn splits_as_written_at_byte_offsets() {
        let split = |s| {
            let r = split_reference(s);
            (r.name, r.tag, r.digest)
        };
        assert_eq!(split("nginx"), ("nginx", None, None));
        assert_eq!(
            split("ahuora/django-api:0.0.17"),
            ("ahuora/django-api", Some("0.0.17"), None)
        );
        assert_eq!(
            split("registry.local:5000/app:1.2"),
            ("registry.local:5000/app", Some("1.2"), None)
        );
        assert_eq!(
            split("registry.local:5000/app"),
            ("registry.local:5000/app", None, None)
        );
        assert_eq!(
            split("reg:5000/a/b:1@sha256:ab"),
            ("reg:5000/a/b", Some("1"), Some("sha256:ab"))
        );
        assert_eq!(
            split("nginx@sha256:abc"),
            ("nginx", None, Some("sha256:abc"))
        );
        // Nothing is normalised or validated: the name is kept as written.
        assert_eq!(split("Nginx:1"), ("Nginx", Some("1"), None));
        assert_eq!(split_reference("nginx:1.2@sha256:abc").name.len(), 5);
    }

    #[test]
    fn same_repository_ignores_aliases_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        for (a, b) in [
            ("nginx", "docker.io/library/nginx"),
            ("nginx", "index.docker.io/library/nginx:1.2"),
            (
                "docker.io/library/nginx",
                "index.docker.io/library/nginx:1.2",
            ),
            ("postgres:16", "registry-1.docker.io/library/postgres"),
            ("ahuora/django-api", "docker.io/ahuora/django-api"),
            ("localhost/app", "localhost/app"),
            ("Registry.Local:5000/app", "registry.local:5000/app"),
            ("GHCR.io/org/app", "ghcr.io/org/app:1"),
            ("localhost:5000/a", "127.0.0.1:5000/a"),
            ("localhost/a", "127.0.0.1/a"),
        ] {
            assert!(same_repository(a, b), "{a} == {b}");
            assert!(same_repository(b, a), "{b} == {a}");
        }
        assert!(same_repository("app", &format!("app@{d}")));
        assert!(same_repository("app", &format!("app:1.2@{d}")));
        for (a, b) in [
            ("ghcr.io/ahuora/django-api", "docker.io/ahuora/django-api"),
            ("ghcr.io/a/b", "docker.io/a/b"),
            ("registry.local:5000/app", "registry.local:5001/app"),
            ("registry.local:5000/app", "registry.local/app"),
            ("localhost:5000/a", "127.0.0.1:5001/a"),
            ("localhost:5000/app", "docker.io/library/app"),
            ("nginx", "docker.io/nginx/nginx"),
            // Paths are case-sensitive and must be lower-case.
            ("ghcr.io/Org/App", "ghcr.io/org/app"),
            ("ghcr.io/Org/App", "ghcr.io/Org/App"),
            ("{{ .Values.image }}", "{{ .Values.image }}"),
        ] {
            assert!(!same_repository(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn ports_stay_with_the_host() {
        let r = parse("localhost:5000/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "app", None)
        );
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.to_string(), "localhost:5000/app");
        let r = parse("localhost:5000/team/app:1.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "team/app", Some("1.0"))
        );
        assert_eq!(
            parse("registry.local:5000/x/y:1.0").name(),
            "registry.local:5000/x/y"
        );
    }

    #[test]
    fn hosts_fold_case_paths_do_not() {
        let r = parse("GHCR.IO/org/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("ghcr.io", "org/app")
        );
        let e = ImageRef::parse("ghcr.io/Org/App").unwrap_err().to_string();
        assert!(e.contains("\"Org\"") && e.contains("lower-case"), "{e}");
    }

    #[test]
    fn digest_only_references() {
        let d = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let r = parse(&format!("app@{d}"));
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/app", None)
        );
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.name(), "docker.io/library/app");
        let r = parse(&format!("app:1.2@{d}"));
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (Some("1.2"), Some(d.as_str()))
        );
        assert_eq!(r.with_tag("1.3").to_string(), "docker.io/library/app:1.3");
    }

    #[test]
    fn validates_tags_and_digests() {
        assert!(is_valid_tag("0.0.17"));
        assert!(is_valid_tag("v1.2.3-rc.1_build"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("1.0 # x"));
        assert!(!is_valid_tag("1\n"));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(is_valid_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_valid_digest("sha256:abc"));
        assert!(!is_valid_digest("sha256"));
        assert!(!is_valid_digest(&format!("sha256:{}", "z".repeat(64))));
        assert!(!is_valid_digest(&format!(":{}", "a".repeat(64))));
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
