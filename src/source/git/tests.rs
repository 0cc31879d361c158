//! Tests of the git source.

use super::*;

#[test]
fn credentials_redact_the_token_anywhere() {
    let creds = GitCredentials::with_token("tok-123");
    assert_eq!(
        creds.redact("bad token tok-123 given"),
        "bad token *** given"
    );
    assert!(!format!("{creds:?}").contains("tok-123"));
}

#[test]
fn empty_token_means_none() {
    assert!(!GitCredentials::with_token("").has_token());
}

#[test]
fn parses_urls_and_rejects_bad_ones() {
    let ok = RemoteLocation::parse("https://tok:secret@github.com/acme/config.git").unwrap();
    assert_eq!(ok.display, "https://tok:***@github.com/acme/config.git");
    assert!(ok.cache_name.starts_with("config-"));
    assert_eq!(ok.url_password.as_deref(), Some("secret"));
    let encoded = RemoteLocation::parse("https://u:a%2Fb@github.com/x.git").unwrap();
    assert_eq!(encoded.url_password.as_deref(), Some("a/b"));
    // Same repository with or without credentials: same cache.
    let plain = RemoteLocation::parse("https://github.com/acme/config.git").unwrap();
    assert_eq!(ok.cache_name, plain.cache_name);
    let other = RemoteLocation::parse("https://github.com/acme/other.git").unwrap();
    assert_ne!(plain.cache_name, other.cache_name);

    for (url, fragment) in [
        ("", "empty"),
        ("ftp://host/repo", "unsupported scheme"),
        ("git@github.com:acme/config.git", "ssh"),
        ("ssh://git@github.com/acme/config.git", "ssh"),
        ("http://", "empty host"),
        ("https://a:secret@/x", "secret"),
    ] {
        let err = RemoteLocation::parse(url).unwrap_err().to_string();
        if fragment == "secret" {
            assert!(!err.contains("secret"), "{err}");
        } else {
            assert!(err.contains(fragment), "{url}: {err}");
        }
    }
}

#[test]
fn local_paths_become_absolute() {
    let loc = RemoteLocation::parse("some/relative/repo").unwrap();
    assert!(Path::new(&loc.fetch_url).is_absolute());
    assert!(loc.cache_name.starts_with("repo-"));
}

#[test]
fn sha_detection() {
    assert!(looks_like_sha("abc1234"));
    assert!(!looks_like_sha("v1.2.3"));
    assert!(!looks_like_sha("main"));
}
