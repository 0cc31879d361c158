//! Marker comments that tie an arbitrary scalar to an image policy, the way
//! Flux's image-automation setters do:
//!
//! ```yaml
//! image: docker.io/ahuora/django-api:0.0.17 # relbot: policy=django-api
//! tag: 0.0.17                               # relbot: policy=django-api:tag
//! image: ghcr.io/acme/app:1.2 # {"$imagepolicy": "flux-system:app"}
//! tag: "1.2"                  # {"$imagepolicy": "flux-system:app:tag"}
//! ```
//!
//! A marker applies to the last scalar that ends on its own line.

/// What a marker asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub policy: String,
    /// The scalar holds only the tag, not `repository:tag`.
    pub tag_only: bool,
}

/// Read a comment's text (what follows `#`). `None` when it is no marker, or
/// a Flux `:name` marker, which never changes on a version bump.
pub(crate) fn parse_marker(comment: &str) -> Option<Marker> {
    let comment = comment.trim();
    if let Some(rest) = comment.strip_prefix("relbot:") {
        let value = rest.trim().strip_prefix("policy=")?;
        let (policy, tag_only) = match value.strip_suffix(":tag") {
            Some(policy) => (policy, true),
            None => (value, false),
        };
        return valid_name(policy).then(|| Marker {
            policy: policy.to_string(),
            tag_only,
        });
    }
    parse_flux_marker(comment)
}

/// `{"$imagepolicy": "namespace:name[:tag|:name]"}`. relbot's policies have
/// no namespace, so only the name is kept.
fn parse_flux_marker(comment: &str) -> Option<Marker> {
    let inner = comment.strip_prefix('{')?.strip_suffix('}')?.trim();
    let value = inner.strip_prefix("\"$imagepolicy\"")?.trim_start();
    let value = value.strip_prefix(':')?.trim();
    let value = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut parts = value.split(':');
    let (_namespace, name, field) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() || !valid_name(name) {
        return None;
    }
    let tag_only = match field {
        None => false,
        Some("tag") => true,
        Some(_) => return None,
    };
    Some(Marker {
        policy: name.to_string(),
        tag_only,
    })
}

/// Kubernetes object names: lowercase DNS labels, plus `.` and `_` which
/// users put in file-derived names.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(policy: &str, tag_only: bool) -> Option<Marker> {
        Some(Marker {
            policy: policy.to_string(),
            tag_only,
        })
    }

    #[test]
    fn reads_relbot_markers() {
        assert_eq!(
            parse_marker(" relbot: policy=django-api"),
            marker("django-api", false)
        );
        assert_eq!(
            parse_marker("relbot:policy=django-api:tag  "),
            marker("django-api", true)
        );
        assert_eq!(parse_marker(" relbot: policy="), None);
        assert_eq!(parse_marker(" relbot: policy=a b"), None);
        assert_eq!(parse_marker(" just a comment"), None);
    }

    #[test]
    fn reads_flux_markers() {
        assert_eq!(
            parse_marker(r#" {"$imagepolicy": "flux-system:app"}"#),
            marker("app", false)
        );
        assert_eq!(
            parse_marker(r#"{"$imagepolicy":"ns:app:tag"}"#),
            marker("app", true)
        );
        assert_eq!(parse_marker(r#" {"$imagepolicy": "ns:app:name"}"#), None);
        assert_eq!(parse_marker(r#" {"$imagepolicy": "app"}"#), None);
    }
}
