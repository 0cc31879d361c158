//! Registry client behaviours the real registry cannot show on demand, against
//! an HTTP double: bearer tokens, pagination, ETags, 429 and 5xx.

#[path = "support/registry_double.rs"]
mod registry_double;

use std::time::{Duration, Instant};

use registry_double::{BearerAuth, DoubleConfig, RegistryDouble, Scripted};
use relbot::release::registry::{
    Credential, RegistryClient, RegistryCredentials, RegistryError, RegistrySettings, RetryPolicy,
};

fn numbered(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("1.0.{i}")).collect()
}

fn config(repository: &str, tags: Vec<String>) -> DoubleConfig {
    let mut config = DoubleConfig::default();
    config.repositories.insert(repository.to_string(), tags);
    config
}

fn fast_settings() -> RegistrySettings {
    let mut settings = RegistrySettings::default();
    settings.retry = RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(20),
        max_wait: Duration::from_secs(5),
    };
    settings
}

fn client_with(settings: RegistrySettings) -> RegistryClient {
    RegistryClient::new(settings, RegistryCredentials::anonymous()).unwrap()
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

#[tokio::test]
async fn registry_double_bearer_challenge_then_cached_token() {
    let mut cfg = config("acme/api", numbered(3));
    cfg.bearer = Some(BearerAuth {
        service: "double-registry".into(),
        token_ttl: Duration::from_secs(300),
        credentials: None,
    });
    let double = RegistryDouble::start(cfg).await;
    let client = client_with(fast_settings());
    let image = double.image("acme/api");

    for _ in 0..3 {
        assert_eq!(sorted(client.list_tags(&image).await.unwrap()), numbered(3));
    }
    assert!(
        client
            .manifest_digest(&image, "1.0.1")
            .await
            .unwrap()
            .starts_with("sha256:")
    );

    let tokens = double.token_requests();
    assert_eq!(tokens.len(), 1, "one token for all calls: {tokens:?}");
    assert!(
        tokens[0].target.contains("service=double-registry"),
        "{}",
        tokens[0].target
    );
    assert!(
        tokens[0]
            .target
            .contains("scope=repository%3Aacme%2Fapi%3Apull"),
        "{}",
        tokens[0].target
    );
    assert!(tokens[0].authorization.is_none(), "anonymous token request");
    // 401 once, then every request carries the token up front.
    let api = double.api_requests();
    assert_eq!(api.len(), 5, "{api:?}");
    assert!(api[0].authorization.is_none());
    assert!(
        api[1..]
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer tok-1"))
    );
    let stats = client.stats().snapshot();
    assert_eq!((stats.requests, stats.token_requests), (5, 1), "{stats:?}");
}

#[tokio::test]
async fn registry_double_token_is_renewed_after_expires_in() {
    let mut cfg = config("acme/api", numbered(2));
    cfg.bearer = Some(BearerAuth {
        service: "svc".into(),
        token_ttl: Duration::from_secs(1),
        credentials: None,
    });
    let double = RegistryDouble::start(cfg).await;
    let client = client_with(fast_settings());
    let image = double.image("acme/api");
    client.list_tags(&image).await.unwrap();
    client.list_tags(&image).await.unwrap();
    assert_eq!(double.token_requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.list_tags(&image).await.unwrap();
    assert_eq!(
        double.token_requests().len(),
        2,
        "an expired token is not reused"
    );
    // The new token was fetched before the request, not after a 401.
    let last = double.api_requests().pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer tok-2"));
    assert_eq!(double.api_requests().len(), 4);
}

#[tokio::test]
async fn registry_double_revoked_token_is_replaced_not_reused() {
    let mut cfg = config("acme/api", numbered(2));
    cfg.bearer = Some(BearerAuth {
        service: "svc".into(),
        token_ttl: Duration::from_secs(300),
        credentials: None,
    });
    let double = RegistryDouble::start(cfg).await;
    let client = client_with(fast_settings());
    let image = double.image("acme/api");
    client.list_tags(&image).await.unwrap();
    double.revoke_tokens();
    client.list_tags(&image).await.unwrap();
    client.list_tags(&image).await.unwrap();
    let api = double.api_requests();
    let auth: Vec<Option<&str>> = api.iter().map(|r| r.authorization.as_deref()).collect();
    assert_eq!(
        auth,
        [
            None,
            Some("Bearer tok-1"),
            Some("Bearer tok-1"),
            Some("Bearer tok-2"),
            Some("Bearer tok-2")
        ]
    );
}

#[tokio::test]
async fn registry_double_unreachable_registry_is_retried_a_bounded_number_of_times() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client_with(fast_settings());
    let image =
        relbot::release::registry::ImageRef::parse(&format!("127.0.0.1:{port}/acme/api")).unwrap();
    let err = client.list_tags(&image).await.unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let stats = client.stats().snapshot();
    assert_eq!((stats.requests, stats.retries), (4, 3), "{stats:?}");
}

#[tokio::test]
async fn registry_double_token_endpoint_gets_basic_credentials() {
    let mut cfg = config("private/app", numbered(1));
    cfg.bearer = Some(BearerAuth {
        service: "svc".into(),
        token_ttl: Duration::from_secs(60),
        credentials: Some(("bot".into(), "t0ken-pass".into())),
    });
    let double = RegistryDouble::start(cfg).await;
    let image = double.image("private/app");

    let err = client_with(fast_settings())
        .list_tags(&image)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");

    let mut creds = RegistryCredentials::anonymous();
    creds.insert(
        &double.host(),
        Credential {
            username: "bot".into(),
            password: "t0ken-pass".into(),
        },
    );
    let client = RegistryClient::new(fast_settings(), creds).unwrap();
    assert_eq!(client.list_tags(&image).await.unwrap(), numbered(1));
    let token_request = double.token_requests().pop().unwrap();
    assert!(token_request.authorization.unwrap().starts_with("Basic "));
    // Credentials go to the token endpoint only, never to the registry API.
    assert!(double.api_requests().iter().all(|r| {
        !r.authorization
            .as_deref()
            .unwrap_or("")
            .starts_with("Basic")
    }));
}

#[tokio::test]
async fn registry_double_follows_link_pagination_one_request_per_page() {
    let mut cfg = config("acme/big", numbered(25));
    cfg.max_page = Some(10);
    let double = RegistryDouble::start(cfg).await;
    let client = client_with(fast_settings());
    let tags = client.list_tags(&double.image("acme/big")).await.unwrap();
    assert_eq!(sorted(tags), sorted(numbered(25)));
    let api = double.api_requests();
    assert_eq!(api.len(), 3, "{api:?}");
    assert!(api[0].target.ends_with("/tags/list?n=1000"));
    assert!(api[1].target.contains("last="), "{}", api[1].target);
    assert_eq!(client.stats().snapshot().pages, 3);

    // Progress hears of each page as it is read: pages so far, tags so far.
    let client = client_with(fast_settings());
    let mut pages = Vec::new();
    let tags = client
        .list_tags_observed(&double.image("acme/big"), &mut |p, t| pages.push((p, t)))
        .await
        .unwrap();
    assert_eq!(tags.len(), 25);
    assert_eq!(pages, [(1, 10), (2, 20), (3, 25)]);
}

#[tokio::test]
async fn registry_double_cross_origin_link_is_not_followed() {
    let elsewhere = RegistryDouble::start(config("acme/big", numbered(25))).await;
    let mut cfg = config("acme/big", numbered(25));
    cfg.max_page = Some(10);
    cfg.foreign_link_origin = Some(format!("http://{}", elsewhere.host()));
    cfg.bearer = Some(BearerAuth {
        service: "svc".into(),
        token_ttl: Duration::from_secs(60),
        credentials: None,
    });
    let double = RegistryDouble::start(cfg).await;
    let err = client_with(fast_settings())
        .list_tags(&double.image("acme/big"))
        .await
        .unwrap_err();
    match &err {
        RegistryError::CrossOriginLink { next, .. } => {
            assert!(next.contains(&elsewhere.host()), "{next}")
        }
        other => panic!("expected CrossOriginLink, got {other:?}"),
    }
    assert!(
        elsewhere.log().is_empty(),
        "the other origin was contacted: {:?}",
        elsewhere.log()
    );
}

#[tokio::test]
async fn registry_double_page_cap() {
    let mut cfg = config("acme/huge", numbered(50));
    cfg.max_page = Some(5);
    let double = RegistryDouble::start(cfg).await;
    let mut settings = fast_settings();
    settings.max_pages = 4;
    let err = client_with(settings)
        .list_tags(&double.image("acme/huge"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::TooManyPages { max_pages: 4, .. }),
        "{err:?}"
    );
    assert_eq!(double.api_requests().len(), 4);
}

#[tokio::test]
async fn registry_double_unchanged_list_costs_only_304s() {
    let mut cfg = config("acme/api", numbered(30));
    cfg.max_page = Some(10);
    cfg.etags = true;
    let double = RegistryDouble::start(cfg).await;
    let client = client_with(fast_settings());
    let image = double.image("acme/api");
    let first = client.list_tags(&image).await.unwrap();
    let second = client.list_tags(&image).await.unwrap();
    assert_eq!(first, second);
    let api = double.api_requests();
    assert_eq!(api.len(), 6);
    assert!(
        api[3..].iter().all(|r| r.if_none_match.is_some()),
        "{api:?}"
    );
    assert_eq!(client.stats().snapshot().not_modified, 3);

    // A new tag changes the last page only; the rest stay 304.
    let mut tags = numbered(30);
    tags.push("2.0.0".into());
    double.set_tags("acme/api", tags);
    let third = client.list_tags(&image).await.unwrap();
    assert!(third.contains(&"2.0.0".to_string()));
    assert_eq!(third.len(), 31);
    // Pages 1-3 answer 304 (the 304 carries the new next link), page 4 is new.
    assert_eq!(
        client.stats().snapshot().not_modified,
        6,
        "{:?}",
        client.stats().snapshot()
    );
    assert_eq!(double.api_requests().len(), 10);
}

#[tokio::test]
async fn registry_double_429_retry_after_then_success() {
    let mut cfg = config("acme/api", numbered(2));
    cfg.ratelimit_remaining = Some(7);
    let double = RegistryDouble::start(cfg).await;
    double.script([Scripted {
        status: 429,
        retry_after: Some("1".into()),
    }]);
    let client = client_with(fast_settings());
    let image = double.image("acme/api");
    let started = Instant::now();
    assert_eq!(sorted(client.list_tags(&image).await.unwrap()), numbered(2));
    let api = double.api_requests();
    assert_eq!(api.len(), 2);
    let gap = api[1].at - api[0].at;
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let stats = client.stats().snapshot();
    assert_eq!((stats.rate_limit_waits, stats.retries), (1, 1), "{stats:?}");
    assert_eq!(client.ratelimit_remaining(&image), Some(7));
}

#[tokio::test]
async fn registry_double_long_retry_after_fails_fast_and_blocks_the_host() {
    let double = RegistryDouble::start(config("acme/api", numbered(2))).await;
    double.script([Scripted {
        status: 429,
        retry_after: Some("3600".into()),
    }]);
    let client = client_with(fast_settings());
    let image = double.image("acme/api");
    let started = Instant::now();
    let err = client.list_tags(&image).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 3600),
        "{err:?}"
    );
    // The next call does not even ask: the registry said come back in an hour.
    let err = client.manifest_digest(&image, "1.0.0").await.unwrap_err();
    assert!(matches!(err, RegistryError::RateLimited { .. }), "{err:?}");
    assert_eq!(double.api_requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn registry_double_429_without_retry_after_backs_off_with_jitter() {
    let double = RegistryDouble::start(config("acme/api", numbered(2))).await;
    double.script([
        Scripted {
            status: 429,
            retry_after: None,
        },
        Scripted {
            status: 429,
            retry_after: None,
        },
    ]);
    let client = client_with(fast_settings());
    client.list_tags(&double.image("acme/api")).await.unwrap();
    let api = double.api_requests();
    assert_eq!(api.len(), 3);
    // base 20 ms: first wait in [10, 20] ms, second in [20, 40] ms.
    assert!(api[1].at - api[0].at >= Duration::from_millis(10));
    assert!(api[2].at - api[1].at >= Duration::from_millis(20));
}

#[tokio::test]
async fn registry_double_5xx_then_success() {
    let double = RegistryDouble::start(config("acme/api", numbered(2))).await;
    double.script([
        Scripted {
            status: 503,
            retry_after: None,
        },
        Scripted {
            status: 500,
            retry_after: None,
        },
        Scripted {
            status: 502,
            retry_after: None,
        },
    ]);
    let client = client_with(fast_settings());
    assert_eq!(
        sorted(client.list_tags(&double.image("acme/api")).await.unwrap()),
        numbered(2)
    );
    assert_eq!(double.api_requests().len(), 4);
    assert_eq!(client.stats().snapshot().retries, 3);
}

#[tokio::test]
async fn registry_double_persistent_5xx_gives_up_after_bounded_retries() {
    let double = RegistryDouble::start(config("acme/api", numbered(2))).await;
    double.script((0..10).map(|_| Scripted {
        status: 500,
        retry_after: None,
    }));
    let client = client_with(fast_settings());
    let err = client
        .list_tags(&double.image("acme/api"))
        .await
        .unwrap_err();
    match err {
        RegistryError::Status {
            status: 500,
            attempts: 4,
            ..
        } => {}
        other => panic!("expected Status 500 after 4 attempts, got {other:?}"),
    }
    assert_eq!(double.api_requests().len(), 4, "max_retries 3 → 4 requests");
}

#[tokio::test]
async fn registry_double_digest_uses_head_not_get() {
    let double = RegistryDouble::start(config("library/nginx", vec!["1.27.0".into()])).await;
    // Docker Hub naming through a mirror: `nginx` is `docker.io/library/nginx`.
    let mut settings = fast_settings();
    settings.set_host("docker.io", Some(&double.host()), false);
    let client = client_with(settings);
    let image = relbot::release::registry::ImageRef::parse("nginx:1.27.0").unwrap();
    let digest = client.manifest_digest(&image, "1.27.0").await.unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let api = double.api_requests();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0].method, "HEAD");
    assert_eq!(api[0].target, "/v2/library/nginx/manifests/1.27.0");
}
