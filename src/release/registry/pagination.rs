//! `Link: </v2/app/tags/list?n=100&last=1.2.3>; rel="next"` (RFC 8288), and
//! the rule that keeps credentials at home: only same-origin links are
//! followed.

use reqwest::Url;

/// A page of tags as last read, kept while the registry gives it an ETag.
#[derive(Debug, Clone)]
pub struct CachedPage {
    pub etag: String,
    pub tags: Vec<String>,
    pub next: Option<Url>,
}

/// The `rel="next"` target of a `Link` header, resolved against `current`.
pub fn next_link(header: &str, current: &Url) -> Option<Result<Url, String>> {
    for link in header.split(',') {
        let link = link.trim();
        let Some(rest) = link.strip_prefix('<') else {
            continue;
        };
        let Some((target, params)) = rest.split_once('>') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(
                current
                    .join(target.trim())
                    .map_err(|e| format!("bad Link target {target:?}: {e}")),
            );
        }
    }
    None
}

/// Same scheme, host and port: the only links we follow with our credentials.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn relative_next_links_resolve_against_the_page() {
        let current = url("https://ghcr.io/v2/acme/api/tags/list?n=2");
        let next = next_link(
            r#"</v2/acme/api/tags/list?n=2&last=1.0.1>; rel="next""#,
            &current,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            next.as_str(),
            "https://ghcr.io/v2/acme/api/tags/list?n=2&last=1.0.1"
        );
        assert!(same_origin(&current, &next));
    }

    #[test]
    fn picks_next_among_several_relations() {
        let current = url("http://127.0.0.1:5000/v2/a/tags/list");
        let header = r#"<http://127.0.0.1:5000/first>; rel="first", <http://127.0.0.1:5000/v2/a/tags/list?last=b>; rel=next"#;
        assert_eq!(
            next_link(header, &current).unwrap().unwrap().as_str(),
            "http://127.0.0.1:5000/v2/a/tags/list?last=b"
        );
        assert!(next_link(r#"<http://x/>; rel="prev""#, &current).is_none());
    }

    #[test]
    fn other_origins_are_not_the_same() {
        let current = url("https://ghcr.io/v2/a/tags/list");
        assert!(!same_origin(
            &current,
            &url("https://evil.example/v2/a/tags/list")
        ));
        assert!(!same_origin(
            &current,
            &url("http://ghcr.io/v2/a/tags/list")
        ));
        assert!(!same_origin(
            &current,
            &url("https://ghcr.io:8443/v2/a/tags/list")
        ));
        assert!(same_origin(&current, &url("https://ghcr.io:443/v2/b")));
    }
}
