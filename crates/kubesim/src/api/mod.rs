//! The resource verbs: get, list, create, update, patch (merge, strategic,
//! apply), delete and deletecollection, each working on the store under one
//! lock so a write is atomic with respect to watchers. Reads live here; the
//! submodules hold the shared write path, the writes, the patch formats and
//! deletion.

mod commit;
mod delete;
mod patches;
mod write;

use commit::*;
use delete::*;
pub use delete::{delete, delete_collection};
use patches::*;
pub use write::{create, patch, update};

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::discovery::{self, ResourceInfo};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::ssa::{self, ApplyCtx, Scope};
use crate::status::{ApiError, ApiResult};
use crate::store::Inner;
use crate::validation::{self, SchemaCheck};
use crate::{Sim, defaults};

/// What a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub res: ResourceInfo,
    /// Empty for cluster-scoped resources and all-namespace lists.
    pub ns: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// Query parameters.
#[derive(Debug, Clone, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }
    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
    fn force(&self) -> bool {
        self.get("force") == Some("true")
    }
    fn strict(&self) -> bool {
        self.get("fieldValidation") == Some("Strict")
    }
}

/// A successful answer: status code, body and `Warning` headers.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            code: 200,
            body,
            warnings: Vec::new(),
        }
    }
}

/// Who is writing.
pub struct Writer<'a> {
    pub params: &'a Params,
    pub user_agent: &'a str,
}

impl Writer<'_> {
    fn manager(&self) -> String {
        match self.params.get("fieldManager") {
            Some(m) => m.to_string(),
            None => self
                .user_agent
                .split('/')
                .next()
                .unwrap_or("unknown")
                .to_string(),
        }
    }
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Adds apiVersion/kind for the version the client asked for.
pub fn present(res: &ResourceInfo, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(res.api_version()));
        m.insert("kind".into(), json!(res.kind));
    }
    o
}

fn name_of(t: &Target) -> &str {
    t.name.as_deref().unwrap_or_default()
}

fn not_found(t: &Target) -> ApiError {
    ApiError::not_found(&t.res.group, &t.res.plural, name_of(t))
}

fn require_namespace(inner: &Inner, t: &Target) -> ApiResult<()> {
    if t.res.namespaced && !inner.namespace_exists(&t.ns) {
        return Err(ApiError::namespace_not_found(&t.ns));
    }
    Ok(())
}

pub fn parse_body(bytes: &[u8], content_type: &str) -> ApiResult<Value> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("request body is not valid UTF-8"))?;
    let v: Value = if content_type.contains("yaml") {
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    Ok(v)
}

// ---- reads ------------------------------------------------------------------

pub fn get(sim: &Sim, t: &Target) -> ApiResult<Reply> {
    let inner = sim.store.lock();
    let obj = inner
        .get(&t.res.key(), &t.ns, name_of(t))
        .ok_or_else(|| not_found(t))?;
    if t.sub.as_deref() == Some("scale") {
        return Ok(Reply::ok(scale_of(&t.res, obj)));
    }
    Ok(Reply::ok(present(&t.res, obj)))
}

fn scale_of(res: &ResourceInfo, obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let _ = res;
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

pub fn list(sim: &Sim, t: &Target, q: &Params) -> ApiResult<Reply> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let after: Option<(String, String)> = match q.get("continue") {
        Some(c) => {
            let mut parts = c.splitn(3, ':');
            let (_, ns, name) = (parts.next(), parts.next(), parts.next());
            match (ns, name) {
                (Some(ns), Some(name)) => Some((ns.into(), name.into())),
                _ => {
                    return Err(ApiError::bad_request(
                        "continue key is not valid: incorrect encoded start resourceVersion",
                    ));
                }
            }
        }
        None => None,
    };
    let inner = sim.store.lock();
    let key = t.res.key();
    let mut items = inner
        .all(&key)
        .filter(|o| t.ns.is_empty() || o["metadata"]["namespace"].as_str() == Some(&t.ns))
        .filter(|o| {
            after.as_ref().is_none_or(|(ns, name)| {
                let k = (
                    o["metadata"]["namespace"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default(),
                );
                k > (ns.as_str(), name.as_str())
            })
        })
        .filter(|o| labels.matches(o) && fields.matches(o));
    let mut out = Vec::new();
    let mut meta = json!({"resourceVersion": inner.rv.to_string()});
    for o in items.by_ref() {
        if limit > 0 && out.len() == limit {
            let remaining = 1 + items.count();
            let last: &Value = out.last().expect("limit > 0");
            meta["continue"] = json!(format!(
                "{}:{}:{}",
                inner.rv,
                last["metadata"]["namespace"].as_str().unwrap_or_default(),
                last["metadata"]["name"].as_str().unwrap_or_default()
            ));
            meta["remainingItemCount"] = json!(remaining);
            break;
        }
        // Built-in lists carry no per-item apiVersion/kind, as on the real server.
        out.push(if t.res.custom {
            present(&t.res, o)
        } else {
            o.clone()
        });
    }
    Ok(Reply::ok(json!({
        "kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
        "metadata": meta, "items": out,
    })))
}
