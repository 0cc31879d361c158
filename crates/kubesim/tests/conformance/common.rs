use std::time::Duration;

use kube::{Client, core::Status};
use serde_json::{Value, json};

/// Sends a raw request and returns the status code and JSON body.
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let r = raw_text(client, method, path, content_type, body).await;
    (r.code, serde_json::from_str(&r.body).unwrap_or(Value::Null))
}

/// A raw answer, for bodies that are not JSON.
pub struct RawReply {
    pub code: u16,
    pub content_type: String,
    pub warnings: Vec<String>,
    pub body: String,
}

/// Sends a raw request and returns the answer as text.
pub async fn raw_text(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> RawReply {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .expect("a valid request");
    let resp = client.send(req).await.expect("a response");
    let code = resp.status().as_u16();
    let header = |name: &str| -> Vec<String> {
        resp.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    };
    let content_type = header("content-type").join(",");
    let warnings = header("warning");
    let bytes = resp.into_body().collect_bytes().await.expect("a body");
    RawReply {
        code,
        content_type,
        warnings,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The server's minor version from /version (`28` for v1.28.7), for the few
/// answers whose wording changed between releases.
pub async fn server_minor(client: &Client) -> u32 {
    let v = client.apiserver_version().await.expect("/version");
    v.minor
        .trim_end_matches('+')
        .parse()
        .unwrap_or_else(|_| panic!("minor version {:?}", v.minor))
}

/// The `metav1.Status` of a failed call.
pub fn status(r: Result<impl std::fmt::Debug, kube::Error>) -> Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn deployment(name: &str, image: &str, replicas: Option<i64>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image,
                    "ports": [{"containerPort": 8080}]}]}
            }
        }
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

pub fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The managedFields entry of `manager` with `operation`.
pub fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}
