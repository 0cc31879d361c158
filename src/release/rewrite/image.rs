//! Just enough of Docker's image-reference grammar to split a scalar into
//! repository, tag and digest, and to tell whether two repositories name the
//! same image (`postgres` == `docker.io/library/postgres`).
//!
//! `release::registry` has the full reference parser for talking to
//! registries; this copy is deliberately minimal and byte-offset based,
//! because rewriting needs to know *where* the tag sits in the text.

/// An image reference split at byte offsets of the original string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitImage<'a> {
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
    /// Byte offset where `:tag` / `@digest` begins (= repository length).
    pub suffix_start: usize,
}

/// Split `host:port/path:tag@digest`. A `:` only starts a tag when it comes
/// after the last `/`, so registry ports are not mistaken for tags.
pub(crate) fn split_image(reference: &str) -> SplitImage<'_> {
    let (name_and_tag, digest) = match reference.find('@') {
        Some(at) => (&reference[..at], Some(&reference[at + 1..])),
        None => (reference, None),
    };
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    };
    SplitImage {
        repository,
        tag,
        digest,
        suffix_start: repository.len(),
    }
}

/// Canonical form of a repository: explicit registry host, Docker Hub's
/// aliases folded to `docker.io`, official images under `library/`.
pub fn normalize_repository(repository: &str) -> String {
    let repository = repository.trim();
    let (host, path) = match repository.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_ascii_lowercase(), rest)
        }
        _ => ("docker.io".to_string(), repository),
    };
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    };
    if host == "docker.io" && !path.contains('/') {
        format!("{host}/library/{path}")
    } else {
        format!("{host}/{path}")
    }
}

/// Whether two repositories name the same image.
pub fn same_repository(a: &str, b: &str) -> bool {
    normalize_repository(a) == normalize_repository(b)
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Checked
/// before writing so a tag can never smuggle YAML syntax (`#`, quotes,
/// newlines) into a file.
pub(crate) fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// OCI digest grammar, restricted to the characters registries use:
/// `algorithm:hex` such as `sha256:<64 hex>`.
pub(crate) fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        })
        && encoded.len() >= 32
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'))
}

/// Whether a plain (unquoted) YAML scalar with this text would be read as
/// something other than a string: a number, bool or null. Tags such as
/// `1.10` or `2` must then be quoted, or the value changes type. Errs on
/// the side of quoting (YAML 1.1 words and `_` digit separators included).
pub(crate) fn plain_scalar_is_not_string(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf",
        "+.inf", ".nan",
    ];
    if WORDS.contains(&text.to_ascii_lowercase().as_str()) {
        return true;
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0o")) {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_');
    }
    // Decimal ints and floats: digits, at most one '.', an optional exponent.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(e) => (&body[..e], Some(&body[e + 1..])),
        None => (body, None),
    };
    let mantissa_ok = mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa.matches('.').count() <= 1
        && mantissa
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_tags_digests_and_ports() {
        let s = split_image("registry.local:5000/app:1.2");
        assert_eq!(
            (s.repository, s.tag, s.digest),
            ("registry.local:5000/app", Some("1.2"), None)
        );
        let s = split_image("registry.local:5000/app");
        assert_eq!((s.repository, s.tag), ("registry.local:5000/app", None));
        let s = split_image("nginx:1.2@sha256:abc");
        assert_eq!(
            (s.repository, s.tag, s.digest),
            ("nginx", Some("1.2"), Some("sha256:abc"))
        );
        assert_eq!(s.suffix_start, 5);
        let s = split_image("nginx@sha256:abc");
        assert_eq!(
            (s.repository, s.tag, s.digest),
            ("nginx", None, Some("sha256:abc"))
        );
        let s = split_image("nginx");
        assert_eq!(
            (s.repository, s.tag, s.digest, s.suffix_start),
            ("nginx", None, None, 5)
        );
    }

    #[test]
    fn normalizes_docker_hub_names() {
        assert_eq!(
            normalize_repository("postgres"),
            "docker.io/library/postgres"
        );
        assert!(same_repository("postgres", "docker.io/library/postgres"));
        assert!(same_repository(
            "index.docker.io/library/postgres",
            "postgres"
        ));
        assert!(same_repository(
            "ahuora/django-api",
            "docker.io/ahuora/django-api"
        ));
        assert!(!same_repository(
            "ghcr.io/ahuora/django-api",
            "docker.io/ahuora/django-api"
        ));
        assert!(same_repository("localhost/app", "localhost/app"));
        assert!(same_repository(
            "Registry.Local:5000/app",
            "registry.local:5000/app"
        ));
        assert!(!same_repository(
            "registry.local:5000/app",
            "registry.local:5001/app"
        ));
    }

    #[test]
    fn validates_tags_and_digests() {
        assert!(is_valid_tag("0.0.17"));
        assert!(is_valid_tag("v1.2.3-rc.1_build"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag("1.0 # x"));
        assert!(!is_valid_tag("1\n"));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(is_valid_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_valid_digest("sha256:abc"));
        assert!(!is_valid_digest("sha256"));
    }

    #[test]
    fn detects_plain_scalars_that_are_not_strings() {
        for text in [
            "1", "1.10", "2e5", "-3", "0x1F", "true", "No", "null", "1_000", ".5",
        ] {
            assert!(plain_scalar_is_not_string(text), "{text}");
        }
        for text in [
            "0.0.17",
            "v1.2",
            "1.2.3-rc.1",
            "latest",
            "1e",
            "abc",
            "1.2-alpine",
        ] {
            assert!(!plain_scalar_is_not_string(text), "{text}");
        }
    }
}
