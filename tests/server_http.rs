//! `relbot serve`'s HTTP surface over real TCP on 127.0.0.1: webhook
//! verification and routing, size caps, replays, health, readiness, metrics
//! and the status page. Work goes to a recording executor.

use std::sync::{Arc, Mutex};

use relbot::release::registry::ImageRef;
use relbot::server::http::{AppState, HttpSettings, Readiness, router};
use relbot::server::page_routes;
use relbot::server::status_page::AppStatus;
use relbot::server::webhook::{Routes, Secret, github_signature};
use relbot::server::{
    Executor, LeaderState, Metrics, PolicySelector, PrSelector, RunContext, RunError, SyncRequest,
    UpdateQueue,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "webhook-secret-for-tests";
const TOKEN: &str = "registry-token-for-tests";

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Executor for Recorder {
    async fn sync(&self, request: &SyncRequest, _: &RunContext) -> Result<(), RunError> {
        let rev = request.revision.clone().unwrap_or_else(|| "head".into());
        self.0
            .lock()
            .unwrap()
            .push(format!("sync {} @{rev}", request.apps));
        Ok(())
    }
    async fn bump(&self, policies: &PolicySelector, _: &RunContext) -> Result<(), RunError> {
        self.0.lock().unwrap().push(format!("bump {policies}"));
        Ok(())
    }
    async fn continue_merge(&self, prs: &PrSelector, _: &RunContext) -> Result<(), RunError> {
        self.0.lock().unwrap().push(format!("merge {prs}"));
        Ok(())
    }
}

fn routes() -> Routes {
    Routes {
        repository: Some("acme/cluster-config".into()),
        branch: "main".into(),
        config_paths: vec!["relbot.yaml".into(), "policies".into()],
        apps: vec![
            ("ahuora".into(), "manifests/ahuora".into()),
            ("platform".into(), "manifests/platform".into()),
        ],
        policies: vec![(
            "django-api".into(),
            ImageRef::parse("docker.io/ahuora/django-api").unwrap(),
        )],
    }
}

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    state: AppState,
    recorder: Recorder,
    client: reqwest::Client,
}

async fn start(body_limit: usize) -> Server {
    relbot::tls::init();
    let recorder = Recorder::default();
    let metrics = Arc::new(Metrics::new());
    let queue = UpdateQueue::start(recorder.clone(), LeaderState::always(), metrics.clone());
    let readiness = Arc::new(Readiness::new(["fetch"], metrics.clone()));
    let settings = HttpSettings {
        body_limit,
        github_secret: Some(Secret::new(SECRET)),
        registry_token: Some(Secret::new(TOKEN)),
    };
    let state = AppState::new(
        queue,
        metrics,
        readiness,
        LeaderState::always(),
        routes(),
        settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone()).merge(page_routes::routes().with_state(state.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        addr,
        state,
        recorder,
        client: reqwest::Client::new(),
    }
}

impl Server {
    async fn github(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<String>,
    ) -> (u16, String) {
        self.github_as("application/json", event, delivery, body, signature)
            .await
    }

    async fn github_as(
        &self,
        content_type: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
        signature: Option<String>,
    ) -> (u16, String) {
        let mut request = self
            .client
            .post(format!("{}/webhooks/github", self.base))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("Content-Type", content_type)
            .body(body.to_vec());
        if let Some(sig) = signature {
            request = request.header("X-Hub-Signature-256", sig);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn signed(body: &[u8]) -> Option<String> {
    Some(github_signature(SECRET.as_bytes(), body))
}

fn push_body(files: &[&str], after: &str) -> Vec<u8> {
    json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": after,
        "repository": {"full_name": "acme/cluster-config"},
        "commits": [{"added": files, "modified": [], "removed": []}]
    })
    .to_string()
    .into_bytes()
}

/// GitHub's default content type for a repository webhook is a form with the
/// JSON in `payload`; the signature covers the form as sent.
#[tokio::test]
async fn github_form_encoded_push_is_verified_and_routed() {
    let server = start(1024 * 1024).await;
    let json = push_body(&["manifests/platform/ns.yaml"], &"f".repeat(40));
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let form = form.into_bytes();
    let content_type = "application/x-www-form-urlencoded";

    let (status, _) = server
        .github_as(content_type, "push", "f-1", &form, signed(&json))
        .await;
    assert_eq!(
        status, 401,
        "the signature must cover the form, not the JSON"
    );
    let (status, text) = server
        .github_as(content_type, "push", "f-2", &form, signed(&form))
        .await;
    assert_eq!(status, 202, "{text}");
    server.state.queue().wait_idle().await;
    assert_eq!(
        server.recorder.calls(),
        vec![format!("sync platform @{}", "f".repeat(40))]
    );

    let no_payload = b"other=1".to_vec();
    let (status, text) = server
        .github_as(
            content_type,
            "push",
            "f-3",
            &no_payload,
            signed(&no_payload),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("payload"), "{text}");
}

#[tokio::test]
async fn github_push_is_verified_routed_and_deduplicated() {
    let server = start(1024 * 1024).await;
    let body = push_body(&["manifests/platform/ns.yaml"], &"c".repeat(40));

    let (status, _) = server.github("push", "d-1", &body, None).await;
    assert_eq!(status, 401, "missing signature");
    let (status, _) = server
        .github(
            "push",
            "d-1",
            &body,
            Some(github_signature(b"wrong", &body)),
        )
        .await;
    assert_eq!(status, 401, "wrong secret");
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let (status, _) = server.github("push", "d-1", &tampered, signed(&body)).await;
    assert_eq!(status, 401, "body changed after signing");

    let (status, text) = server.github("push", "d-1", &body, signed(&body)).await;
    assert_eq!(status, 202, "{text}");
    let (status, text) = server.github("push", "d-1", &body, signed(&body)).await;
    assert_eq!(
        (status, text.as_str()),
        (200, "duplicate delivery ignored\n")
    );

    server.state.queue().wait_idle().await;
    assert_eq!(
        server.recorder.calls(),
        vec![format!("sync platform @{}", "c".repeat(40))]
    );

    let metrics = server.state.metrics();
    assert_eq!(
        metrics.webhook_deliveries.get(&["push", "bad_signature"]),
        3.0
    );
    assert_eq!(metrics.webhook_deliveries.get(&["push", "accepted"]), 1.0);
    assert_eq!(metrics.webhook_deliveries.get(&["push", "duplicate"]), 1.0);
}

#[tokio::test]
async fn ping_unknown_and_malformed_events() {
    let server = start(1024 * 1024).await;
    let ping = br#"{"zen":"Design for failure.","hook_id":1}"#;
    assert_eq!(
        server.github("ping", "p-1", ping, signed(ping)).await.0,
        200
    );
    let star = br#"{"action":"created"}"#;
    let (status, text) = server.github("star", "s-1", star, signed(star)).await;
    assert_eq!(status, 202);
    assert!(text.starts_with("unknown_event"), "{text}");
    let bad = b"{not json";
    assert_eq!(server.github("push", "m-1", bad, signed(bad)).await.0, 400);
    // A push that touches no application triggers nothing.
    let docs = push_body(&["docs/index.md"], &"d".repeat(40));
    assert_eq!(
        server.github("push", "n-1", &docs, signed(&docs)).await.0,
        202
    );
    server.state.queue().wait_idle().await;
    assert!(
        server.recorder.calls().is_empty(),
        "{:?}",
        server.recorder.calls()
    );
    assert_eq!(
        server
            .state
            .metrics()
            .webhook_deliveries
            .get(&["other", "unknown_event"]),
        1.0
    );
}

#[tokio::test]
async fn bodies_over_the_cap_get_413() {
    let server = start(1024).await;
    let big = vec![b' '; 4096];
    // Declared length over the cap: rejected before reading.
    assert_eq!(
        server.github("push", "big-1", &big, signed(&big)).await.0,
        413
    );

    // Chunked body without a length: rejected while streaming.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let sig = github_signature(SECRET.as_bytes(), &big);
    let mut request = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {sig}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.chunks(512) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(
        server
            .state
            .metrics()
            .webhook_deliveries
            .get(&["push", "too_large"]),
        2.0
    );
}

#[tokio::test]
async fn registry_webhook_needs_the_token() {
    let server = start(1024 * 1024).await;
    let hub =
        json!({"push_data": {"tag": "0.4.0"}, "repository": {"repo_name": "ahuora/django-api"}})
            .to_string();
    let post = |token: &str| {
        server
            .client
            .post(format!("{}/webhooks/registry/{token}", server.base))
            .body(hub.clone())
            .send()
    };
    assert_eq!(post("nope").await.unwrap().status().as_u16(), 401);
    assert_eq!(post(TOKEN).await.unwrap().status().as_u16(), 202);
    server.state.queue().wait_idle().await;
    assert_eq!(server.recorder.calls(), vec!["bump django-api"]);
    let other = json!({"push_data": {"tag": "1"}, "repository": {"repo_name": "x/y"}}).to_string();
    let response = server
        .client
        .post(format!("{}/webhooks/registry/{TOKEN}", server.base))
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    assert!(response.text().await.unwrap().starts_with("no_match"));
}

#[tokio::test]
async fn health_readiness_metrics_and_status_page() {
    let server = start(1024 * 1024).await;
    assert_eq!(server.get("/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(
        server.get("/readyz").await,
        (503, "waiting for: fetch\n".to_string())
    );
    server.state.readiness().mark("fetch");
    assert_eq!(server.get("/readyz").await.0, 200);

    server.state.update_status(|s| {
        s.repository = Some("https://user:s3cr3t@github.com/acme/cluster-config.git".into());
        s.apps.push(AppStatus {
            name: "platform".into(),
            sync: "Synced".into(),
            health: "Healthy".into(),
            message: Some("<b>3 changed</b>".into()),
            ..Default::default()
        });
    });
    let (status, page) = server.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<a href=\"/applications/platform\">platform</a>"));
    assert!(page.contains("&lt;b&gt;3 changed&lt;/b&gt;"));
    assert!(!page.contains("s3cr3t"));
    // The one script is relbot's own, from this server; the page works without it.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains("<script src=\"/assets/live.js\" defer></script>"));
    let (status, script) = server.get("/assets/live.js").await;
    assert_eq!(status, 200);
    assert!(script.contains("new EventSource(\"/api/v1/events\")"));
    let (status, app) = server.get("/applications/platform").await;
    assert_eq!(status, 200);
    assert!(
        app.contains("No run of this application has finished"),
        "{app}"
    );
    assert_eq!(server.get("/applications/other").await.0, 404);

    let response = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    check_prometheus_text(&text);
    assert!(text.contains("relbot_ready 1\n"), "{text}");
}

/// A small check of the text exposition format: every sample belongs to a
/// family announced by `# HELP` and `# TYPE`, names and labels are well
/// formed, values parse as floats.
fn check_prometheus_text(text: &str) {
    let name_re = regex::Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
    let sample_re = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (\S+)$"#,
    )
    .unwrap();
    let mut typed = std::collections::HashMap::new();
    let mut helped = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_re.is_match(name), "bad name in {line:?}");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{line:?}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
        } else {
            let caps = sample_re
                .captures(line)
                .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            let name = &caps[1];
            let value = &caps[5];
            assert!(
                value == "+Inf" || value.parse::<f64>().is_ok(),
                "bad value in {line:?}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                typed.contains_key(family),
                "sample before its TYPE: {line:?}"
            );
            assert!(helped.contains(family), "sample without HELP: {line:?}");
        }
    }
    assert!(
        typed.len() >= 15,
        "expected relbot's metric families, got {typed:?}"
    );
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting() {
    relbot::tls::init();
    let metrics = Arc::new(Metrics::new());
    let queue = UpdateQueue::start(Recorder::default(), LeaderState::always(), metrics.clone());
    let readiness = Arc::new(Readiness::new(Vec::<String>::new(), metrics.clone()));
    let state = AppState::new(
        queue,
        metrics,
        readiness,
        LeaderState::always(),
        routes(),
        HttpSettings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(relbot::server::http::serve(
        listener,
        router(state),
        shutdown.clone(),
    ));
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Without a configured secret, GitHub deliveries are refused.
    let response = client
        .post(format!("http://{addr}/webhooks/github"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
