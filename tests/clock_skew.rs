//! Clock skew against a double of the three peers whose `Date` header is an
//! hour ahead of the local clock: the Kubernetes client, the registry
//! client and the GitHub client each record the skew, `/metrics` would show
//! it per peer, and each refusal of a credential names the clock as the
//! likely cause with the figure.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relbot::clock::{self, Peer};
use relbot::release::github::{GitHubAuth, GitHubClient, GithubSettings, RetryPolicy};
use relbot::release::registry::{RegistryClient, RegistryCredentials, RegistrySettings};
use serde_json::json;

/// The double's clock: an hour ahead of ours.
const AHEAD: Duration = Duration::from_secs(3600);

fn skewed(status: StatusCode, body: serde_json::Value, extra: &[(&str, String)]) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now() + AHEAD)).unwrap(),
    );
    for (name, value) in extra {
        headers.insert(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (status, headers, axum::Json(body)).into_response()
}

async fn start() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let unauthorized = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401
    });
    let app = Router::new()
        // Kubernetes
        .route(
            "/version",
            get(|| async {
                skewed(
                    StatusCode::OK,
                    json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}),
                    &[],
                )
            }),
        )
        .route(
            "/api/v1/namespaces/relbot/configmaps/relbot-status-web",
            get(move || {
                let body = unauthorized.clone();
                async move { skewed(StatusCode::UNAUTHORIZED, body, &[]) }
            }),
        )
        // Registry: a bearer challenge, a token, and the token refused.
        .route(
            "/v2/acme/api/tags/list",
            get(move || async move {
                skewed(
                    StatusCode::UNAUTHORIZED,
                    json!({"errors": [{"code": "UNAUTHORIZED", "message": "token expired"}]}),
                    &[(
                        "www-authenticate",
                        format!(
                            r#"Bearer realm="http://{addr}/token",service="double",scope="repository:acme/api:pull""#
                        ),
                    )],
                )
            }),
        )
        .route(
            "/token",
            get(|| async { skewed(StatusCode::OK, json!({"token": "t", "expires_in": 300}), &[]) }),
        )
        // GitHub: an App's JWT refused for its expiry.
        .route(
            "/app/installations/77/access_tokens",
            post(|| async {
                skewed(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "'Expiration time' claim ('exp') is too far in the future", "documentation_url": "https://docs.github.com/rest"}),
                    &[],
                )
            }),
        )
        .route(
            "/repos/acme/cluster-config",
            get(|| async {
                skewed(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
                    &[],
                )
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn assert_an_hour_behind(peer: Peer) {
    let skew = clock::book()
        .skew(peer)
        .unwrap_or_else(|| panic!("no skew recorded for {}", peer.as_str()));
    assert!(
        (skew.seconds + 3600.0).abs() <= 3.0,
        "{}: {}",
        peer.as_str(),
        skew.seconds
    );
    assert!(skew.beyond_warning());
}

/// The message names the skew in whole seconds; a `Date` header has one-second
/// resolution, so an hour measured across a second's edge reads 3599 or 3601.
fn names_an_hour_behind(text: &str, peer: &str) -> bool {
    (3599..=3601).any(|s| text.contains(&format!("the local clock is {s} s behind {peer}")))
}

#[tokio::test]
async fn each_client_reads_the_peers_date_and_blames_the_clock_for_refused_tokens() {
    let addr = start().await;

    // Kubernetes: the ping records the skew; a 401 names the clock.
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let cluster = relbot::cluster::client::Cluster::new(config).unwrap();
    cluster.ping(Duration::from_secs(5)).await.unwrap();
    assert_an_hour_behind(Peer::ApiServer);
    let refused =
        relbot::sync::status::read_annotation(cluster.read_only(), "relbot", "web", "relbot.dev/x")
            .await;
    assert_eq!(refused, None);
    let kind = relbot::cluster::discovery::ResolvedKind {
        resource: kube::discovery::ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        },
        namespaced: true,
        pending: false,
    };
    let failure = cluster
        .get(&kind, Some("relbot"), "relbot-status-web")
        .await
        .unwrap_err();
    assert_eq!(failure.code, 401);
    assert!(
        names_an_hour_behind(&failure.to_string(), "the Kubernetes API server's"),
        "{failure}"
    );

    // Registry: the refused token's error names the clock.
    relbot::tls::init();
    let registry = RegistryClient::new(
        RegistrySettings::default(),
        RegistryCredentials::anonymous(),
    )
    .unwrap();
    let image = relbot::release::registry::ImageRef::parse(&format!("{addr}/acme/api")).unwrap();
    let error = registry.list_tags(&image).await.unwrap_err().to_string();
    assert_an_hour_behind(Peer::Registry);
    assert!(
        names_an_hour_behind(&error, "the image registry's"),
        "{error}"
    );

    // GitHub: a plain 401, then an App whose JWT is refused for its expiry.
    let settings = |auth: GitHubAuth| GithubSettings {
        api_url: format!("http://{addr}"),
        repository: "acme/cluster-config".into(),
        auth,
        retry: RetryPolicy {
            max_attempts: 1,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(10),
            max_rate_limit_waits: 0,
            rate_limit_cap: Duration::from_secs(1),
        },
    };
    let token = GitHubClient::new(settings(GitHubAuth::Token(
        octocrab::secrecy::SecretString::from("ghp_x".to_string()),
    )))
    .unwrap();
    let error = token.default_branch().await.unwrap_err().to_string();
    assert_an_hour_behind(Peer::GitHub);
    assert!(names_an_hour_behind(&error, "GitHub's"), "{error}");
    let app = GitHubClient::new(settings(GitHubAuth::App {
        app_id: 4242,
        private_key_pem: octocrab::secrecy::SecretString::from(
            include_str!("support/fixtures/github-app-test-key.pem").to_string(),
        ),
        installation_id: 77,
    }))
    .unwrap();
    let error = app.default_branch().await.unwrap_err().to_string();
    assert!(
        error.contains("'exp'") && error.contains("clock"),
        "the JWT refusal names the clock: {error}"
    );

    // The figures as /metrics exports them.
    let metrics = relbot::server::Metrics::new().render();
    for peer in ["apiserver", "registry", "github"] {
        assert!(
            metrics.contains(&format!("relbot_clock_skew_seconds{{peer=\"{peer}\"}} -3")),
            "{peer}: {metrics}"
        );
    }
}
