//! The resource verbs: get, list, create, update, patch (merge, strategic,
//! apply), delete and deletecollection, each working on the store under one
//! lock so a write is atomic with respect to watchers.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::discovery::{self, ResourceInfo};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::ssa::{self, ApplyCtx, Scope};
use crate::status::{self, ApiError, ApiResult};
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

// ---- the shared write path --------------------------------------------------

struct Write<'a> {
    t: &'a Target,
    manager: String,
    dry_run: bool,
    strict: bool,
    apply: bool,
}

fn scope_for(res: &ResourceInfo, sub: Option<&str>) -> Scope {
    match sub {
        Some("status") => Scope::Status,
        _ if res.has_status => Scope::MainNoStatus,
        _ => Scope::Main,
    }
}

fn strip_for_generation(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

fn equal_ignoring_rv(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    for v in [&mut a, &mut b] {
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
    }
    a == b
}

/// Server-owned metadata, carried over from the stored object or created.
fn fix_metadata(res: &ResourceInfo, t: &Target, old: Option<&Value>, new: &mut Value) {
    let meta = &mut new["metadata"];
    if let Some(m) = meta.as_object_mut() {
        for k in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    meta["name"] = json!(name_of(t));
    if res.namespaced {
        meta["namespace"] = json!(t.ns);
    } else if let Some(m) = meta.as_object_mut() {
        m.remove("namespace");
    }
    match old {
        Some(old) => {
            for k in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                if let Some(v) = old["metadata"].get(k) {
                    meta[k] = v.clone();
                }
            }
        }
        None => {
            meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
            meta["creationTimestamp"] = json!(now());
            if res.tracks_generation() {
                meta["generation"] = json!(1);
            }
        }
    }
}

/// The status subresource and the main resource each write only their own part.
fn fix_status(res: &ResourceInfo, sub: Option<&str>, old: Option<&Value>, new: &mut Value) {
    if !res.has_status {
        return;
    }
    match (sub, old) {
        (Some("status"), Some(old)) => {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
            merged["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
            merged["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"].clone();
            *new = merged;
        }
        (_, Some(old)) => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        (_, None) => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
}

fn crd_status(old: Option<&Value>, new: &mut Value) {
    let time = old
        .and_then(|o| o["status"]["conditions"][0]["lastTransitionTime"].as_str())
        .map(String::from)
        .unwrap_or_else(now);
    let storage: Vec<Value> = new["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    new["status"] = json!({
        "acceptedNames": new["spec"]["names"],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": time},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": time},
        ],
        "storedVersions": storage,
    });
}

fn release_service(inner: &mut Inner, obj: &Value) {
    for ip in obj["spec"]["clusterIPs"].as_array().into_iter().flatten() {
        if let Some(ip) = ip.as_str() {
            inner.ips.release(ip);
        }
    }
    for p in obj["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(np) = p["nodePort"].as_u64() {
            inner.node_ports.remove(&(np as u16));
        }
    }
}

fn missing_field(e: &str) -> Option<String> {
    let start = e.find("missing field `")? + "missing field `".len();
    let end = e[start..].find('`')? + start;
    Some(e[start..end].to_string())
}

/// Everything after the new object is assembled: defaults, validation,
/// generation, ownership, no-op detection, dry-run and storage.
fn commit(inner: &mut Inner, w: &Write, old: Option<&Value>, mut new: Value) -> ApiResult<Reply> {
    let t = w.t;
    let res = &t.res;
    let sub = t.sub.as_deref();
    let create = old.is_none();
    let mut warnings = Vec::new();

    if let (Some(old), Some(rv)) = (old, new["metadata"]["resourceVersion"].as_str())
        && old["metadata"]["resourceVersion"].as_str() != Some(rv)
    {
        return Err(ApiError::modified(&res.group, &res.plural, name_of(t)));
    }
    fix_metadata(res, t, old, &mut new);
    fix_status(
        res,
        if sub == Some("scale") { None } else { sub },
        old,
        &mut new,
    );
    if res.kind == "Service"
        && let Some(old) = old
    {
        // Updates that omit the allocated address keep it, as on the real server.
        for k in ["clusterIP", "clusterIPs"] {
            if new["spec"].get(k).is_none() && old["spec"].get(k).is_some() {
                new["spec"][k] = old["spec"][k].clone();
            }
        }
    }
    new["apiVersion"] = json!(res.api_version());
    new["kind"] = json!(res.kind);
    defaults::apply(res, &mut new, inner, create)?;
    if res.kind == "CustomResourceDefinition" {
        crd_status(old, &mut new);
    }

    match validation::check_schema(res, &new) {
        SchemaCheck::Ok => {}
        SchemaCheck::Unknown(paths) if w.strict || (w.apply && !res.custom) => {
            if create {
                release_service(inner, &new);
            }
            let msg = if w.strict {
                let list: Vec<String> = paths
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    res.kind,
                    res.version,
                    res.kind,
                    list.join(", ")
                )
            } else {
                format!(
                    "failed to create typed patch object ({}, Kind={}): .{}: field not declared in schema",
                    res.api_version(),
                    res.kind,
                    paths[0]
                )
            };
            return Err(ApiError::bad_request(msg));
        }
        SchemaCheck::Unknown(paths) => {
            validation::prune(&mut new, &paths);
            warnings.extend(paths.iter().map(|p| format!("unknown field \"{p}\"")));
        }
        SchemaCheck::Undecodable(e) => {
            if create {
                release_service(inner, &new);
            }
            return Err(match missing_field(&e) {
                Some(f) => {
                    ApiError::invalid(&res.kind_q(), name_of(t), &[(f, "Required value".into())])
                }
                None => ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {e}",
                    res.kind, res.version, res.kind
                )),
            });
        }
    }
    if let Err(e) = validation::validate(res, old, &new) {
        if create {
            release_service(inner, &new);
        }
        return Err(e);
    }

    if let Some(old) = old
        && res.tracks_generation()
        && strip_for_generation(old) != strip_for_generation(&new)
    {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if !w.apply {
        let api_version = res.api_version();
        let now = now();
        let ctx = ApplyCtx {
            manager: &w.manager,
            api_version: &api_version,
            subresource: sub,
            force: false,
            now: &now,
            schema: res.ssa_schema(),
            scope: scope_for(res, sub),
        };
        ssa::record_update(old.unwrap_or(&Value::Null), &mut new, &ctx);
    }

    if let Some(old) = old
        && equal_ignoring_rv(old, &new)
    {
        return Ok(Reply {
            code: 200,
            body: present(res, old),
            warnings,
        });
    }
    let finalized = new["metadata"]["deletionTimestamp"].is_string()
        && new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    if w.dry_run {
        if create {
            release_service(inner, &new);
        }
        if let Some(old) = old {
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        }
        return Ok(Reply {
            code: if create { 201 } else { 200 },
            body: new,
            warnings,
        });
    }
    if finalized {
        let stored = inner.put(res, new, "MODIFIED");
        let ns = stored["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let removed = inner.remove(&res.key(), &ns, name_of(t)).unwrap_or(stored);
        after_delete(inner, res, &removed);
        return Ok(Reply {
            code: 200,
            body: present(res, &removed),
            warnings,
        });
    }
    let stored = inner.put(res, new, if create { "ADDED" } else { "MODIFIED" });
    if res.kind == "CustomResourceDefinition" {
        register_crd(inner, &stored);
    }
    Ok(Reply {
        code: if create { 201 } else { 200 },
        body: present(res, &stored),
        warnings,
    })
}

fn register_crd(inner: &mut Inner, crd: &Value) {
    let group = crd["spec"]["group"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plural = crd["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    inner
        .resources
        .retain(|r| !(r.custom && r.group == group && r.plural == plural));
    inner.resources.extend(discovery::from_crd(crd));
}

/// Follow-ups once an object is gone: CRD kinds disappear, dependents are collected.
fn after_delete(inner: &mut Inner, res: &ResourceInfo, obj: &Value) {
    if res.kind == "CustomResourceDefinition" && !res.custom {
        let group = obj["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = obj["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        inner
            .resources
            .retain(|r| !(r.custom && r.group == group && r.plural == plural));
        let key = format!("{group}/{plural}");
        let doomed: Vec<(String, String)> = inner
            .every()
            .into_iter()
            .filter(|(k, ..)| *k == key)
            .map(|(_, ns, n, _)| (ns, n))
            .collect();
        for (ns, n) in doomed {
            inner.remove(&key, &ns, &n);
        }
    }
    if let Some(uid) = obj["metadata"]["uid"].as_str() {
        collect_dependents(inner, uid);
    }
}

/// Background garbage collection by ownerReferences (simplified: immediate).
fn collect_dependents(inner: &mut Inner, uid: &str) {
    let deps: Vec<(String, String, String, Value)> = inner
        .every()
        .into_iter()
        .filter(|(.., o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
        })
        .map(|(k, ns, n, o)| (k, ns, n, o.clone()))
        .collect();
    for (key, ns, name, obj) in deps {
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let Some(res) = inner.resources.iter().find(|r| r.key() == key).cloned() else {
            continue;
        };
        if has_finalizers {
            if obj["metadata"]["deletionTimestamp"].is_null() {
                let mut o = obj;
                o["metadata"]["deletionTimestamp"] = json!(now());
                o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                inner.put(&res, o, "MODIFIED");
            }
        } else if let Some(removed) = inner.remove(&key, &ns, &name) {
            after_delete(inner, &res, &removed);
        }
    }
}

// ---- writes -----------------------------------------------------------------

fn check_identity(t: &Target, body: &Value) -> ApiResult<()> {
    let res = &t.res;
    if let Some(av) = body["apiVersion"].as_str()
        && av != res.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let Some(k) = body["kind"].as_str()
        && k != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            res.kind
        )));
    }
    if res.namespaced
        && let Some(ns) = body["metadata"]["namespace"].as_str()
        && !ns.is_empty()
        && ns != t.ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let (Some(n), Some(url)) = (body["metadata"]["name"].as_str(), t.name.as_deref())
        && n != url
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({url})"
        )));
    }
    Ok(())
}

pub fn create(sim: &Sim, t: &Target, w: &Writer, body: Value) -> ApiResult<Reply> {
    check_identity(t, &body)?;
    let mut body = body;
    let mut name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty()
        && let Some(prefix) = body["metadata"]["generateName"].as_str()
    {
        let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
        name = format!("{prefix}{suffix}");
    }
    if name.is_empty() {
        return Err(ApiError::invalid(
            &t.res.kind_q(),
            "",
            &[(
                "metadata.name".into(),
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    if body["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let t = Target {
        name: Some(name.clone()),
        ..t.clone()
    };
    let mut inner = sim.store.lock();
    require_namespace(&inner, &t)?;
    if inner.get(&t.res.key(), &t.ns, &name).is_some() {
        return Err(ApiError::already_exists(&t.res.group, &t.res.plural, &name));
    }
    let write = Write {
        t: &t,
        manager: w.manager(),
        dry_run: w.params.dry_run(),
        strict: w.params.strict(),
        apply: false,
    };
    commit(&mut inner, &write, None, body)
}

pub fn update(sim: &Sim, t: &Target, w: &Writer, body: Value) -> ApiResult<Reply> {
    check_identity(t, &body)?;
    let mut inner = sim.store.lock();
    let old = inner
        .get(&t.res.key(), &t.ns, name_of(t))
        .cloned()
        .ok_or_else(|| not_found(t))?;
    let new = if t.sub.as_deref() == Some("scale") {
        scaled(&old, &body)
    } else {
        body
    };
    let write = Write {
        t,
        manager: w.manager(),
        dry_run: w.params.dry_run(),
        strict: w.params.strict(),
        apply: false,
    };
    let reply = commit(&mut inner, &write, Some(&old), new)?;
    Ok(scale_reply(t, reply))
}

fn scaled(old: &Value, scale: &Value) -> Value {
    let mut new = old.clone();
    new["spec"]["replicas"] = scale["spec"]["replicas"].clone();
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
        new["metadata"]["resourceVersion"] = json!(rv);
    }
    new
}

fn scale_reply(t: &Target, mut reply: Reply) -> Reply {
    if t.sub.as_deref() == Some("scale") {
        reply.body = scale_of(&t.res, &reply.body);
    }
    reply
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Strategic merge patch, simplified: a merge patch whose associative lists merge by key.
fn strategic_patch(target: &mut Value, patch: &Value, kind: &str, path: &mut ssa::Path) {
    match (target.is_object(), patch) {
        (_, Value::Object(p)) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in p {
                if k.starts_with("$") {
                    continue;
                }
                let t = target.as_object_mut().expect("object");
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                path.push(ssa::Pe::Field(k.clone()));
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                match (
                    ssa::list_type(ssa::Schema::Builtin(kind), path),
                    slot.as_array_mut(),
                    v.as_array(),
                ) {
                    (ssa::ListType::Map(keys), Some(live), Some(items)) => {
                        for item in items {
                            let key = ssa::item_key(item, &keys);
                            match live.iter_mut().find(|i| ssa::item_key(i, &keys) == key) {
                                Some(l) => strategic_patch(l, item, kind, path),
                                None => live.push(item.clone()),
                            }
                        }
                    }
                    _ => strategic_patch(slot, v, kind, path),
                }
                path.pop();
            }
        }
        _ => *target = patch.clone(),
    }
}

/// RFC 6902 JSON patch (add, remove, replace, test).
fn json_patch(target: &mut Value, ops: &Value) -> ApiResult<()> {
    let bad = |m: String| ApiError::new(422, "Invalid", m);
    for op in ops
        .as_array()
        .ok_or_else(|| bad("json patch must be an array".into()))?
    {
        let path = op["path"].as_str().unwrap_or_default();
        let (parent_ptr, last) = path.rsplit_once('/').unwrap_or(("", path));
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op["value"].clone();
        match op["op"].as_str().unwrap_or_default() {
            "test" => {
                if target.pointer(path) != Some(&value) {
                    return Err(bad(format!(
                        "the server rejected our request due to an error in our request: testing value {path} failed"
                    )));
                }
            }
            kind @ ("add" | "replace" | "remove") => {
                let parent = target
                    .pointer_mut(parent_ptr)
                    .ok_or_else(|| bad(format!("doc is missing path: \"{path}\"")))?;
                match parent {
                    Value::Object(m) => {
                        if kind == "remove" {
                            m.remove(&last)
                                .ok_or_else(|| bad(format!("doc is missing key: {path}")))?;
                        } else {
                            m.insert(last, value);
                        }
                    }
                    Value::Array(a) => {
                        let idx = if last == "-" {
                            a.len()
                        } else {
                            last.parse::<usize>()
                                .map_err(|_| bad(format!("invalid index {last}")))?
                        };
                        match kind {
                            "add" if idx <= a.len() => a.insert(idx, value),
                            "replace" if idx < a.len() => a[idx] = value,
                            "remove" if idx < a.len() => {
                                a.remove(idx);
                            }
                            _ => return Err(bad(format!("index out of range: {path}"))),
                        }
                    }
                    _ => return Err(bad(format!("doc is missing path: \"{path}\""))),
                }
            }
            other => return Err(bad(format!("unexpected json patch op {other:?}"))),
        }
    }
    Ok(())
}

pub fn patch(
    sim: &Sim,
    t: &Target,
    w: &Writer,
    bytes: &[u8],
    content_type: &str,
) -> ApiResult<Reply> {
    if content_type.starts_with("application/apply-patch") {
        return apply(sim, t, w, parse_body(bytes, "yaml")?);
    }
    let patch: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut inner = sim.store.lock();
    let old = inner
        .get(&t.res.key(), &t.ns, name_of(t))
        .cloned()
        .ok_or_else(|| not_found(t))?;
    let base = if t.sub.as_deref() == Some("scale") {
        scale_of(&t.res, &old)
    } else {
        old.clone()
    };
    let mut new = base;
    // The patch is applied to the stored object; a resourceVersion in it is a precondition.
    match content_type {
        ct if ct.starts_with("application/merge-patch+json") => merge_patch(&mut new, &patch),
        ct if ct.starts_with("application/strategic-merge-patch+json") => {
            if t.res.custom {
                return Err(ApiError::unsupported_media(ct));
            }
            strategic_patch(&mut new, &patch, &t.res.kind, &mut Vec::new())
        }
        ct if ct.starts_with("application/json-patch+json") => json_patch(&mut new, &patch)?,
        ct => return Err(ApiError::unsupported_media(ct)),
    }
    if t.sub.as_deref() == Some("scale") {
        new = scaled(&old, &new);
    }
    check_identity(t, &new)?;
    let write = Write {
        t,
        manager: w.manager(),
        dry_run: w.params.dry_run(),
        strict: w.params.strict(),
        apply: false,
    };
    let reply = commit(&mut inner, &write, Some(&old), new)?;
    Ok(scale_reply(t, reply))
}

fn conflict_error(t: &Target, conflicts: &[ssa::Conflict]) -> ApiError {
    let msg = if let [c] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager, c.path
        )
    } else {
        let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(
                conflicts
                    .iter()
                    .filter(|c| c.manager == m)
                    .map(|c| format!("- {}", c.path)),
            );
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict",
            "message": format!("conflict with {}", c.manager), "field": c.path})
        })
        .collect();
    let mut e = ApiError::new(409, "Conflict", msg);
    let mut d = json!({"name": name_of(t), "kind": t.res.plural, "causes": causes});
    if !t.res.group.is_empty() {
        d["group"] = json!(t.res.group);
    }
    e.details = Some(d);
    e
}

pub fn apply(sim: &Sim, t: &Target, w: &Writer, cfg: Value) -> ApiResult<Reply> {
    let Some(manager) = w.params.get("fieldManager") else {
        return Err(ApiError::invalid(
            "PatchOptions.meta.k8s.io",
            "",
            &[(
                "fieldManager".into(),
                "Required value: is required for apply patch".into(),
            )],
        ));
    };
    if cfg["apiVersion"].as_str().is_none() || cfg["kind"].as_str().is_none() {
        return Err(ApiError::bad_request(
            "error decoding YAML: Object 'Kind' is missing in the apply configuration",
        ));
    }
    check_identity(t, &cfg)?;
    let mut cfg = ssa::strip_nulls(&cfg);
    let sub = t.sub.as_deref();
    if let Some(m) = cfg["metadata"].as_object_mut() {
        for k in [
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    let scope = scope_for(&t.res, sub);
    if let Some(m) = cfg.as_object_mut() {
        match scope {
            Scope::MainNoStatus => {
                m.remove("status");
            }
            Scope::Status => {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
            }
            Scope::Main => {}
        }
    }
    // Custom resources are pruned to their schema before apply, as the real decoder does.
    let mut pruned = Vec::new();
    if t.res.custom
        && !w.params.strict()
        && let SchemaCheck::Unknown(paths) = validation::check_schema(&t.res, &cfg)
    {
        validation::prune(&mut cfg, &paths);
        pruned = paths
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
    }
    let rv_precondition = cfg["metadata"]["resourceVersion"]
        .as_str()
        .map(String::from);
    if let Some(m) = cfg["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let mut inner = sim.store.lock();
    let old = inner.get(&t.res.key(), &t.ns, name_of(t)).cloned();
    if old.is_none() {
        if sub.is_some() {
            return Err(not_found(t));
        }
        require_namespace(&inner, t)?;
    }
    let api_version = t.res.api_version();
    let now = now();
    let ctx = ApplyCtx {
        manager,
        api_version: &api_version,
        subresource: sub,
        force: w.params.force(),
        now: &now,
        schema: t.res.ssa_schema(),
        scope,
    };
    let mut new = ssa::apply(old.as_ref().unwrap_or(&Value::Null), &cfg, &ctx)
        .map_err(|c| conflict_error(t, &c))?;
    if let Some(rv) = rv_precondition {
        new["metadata"]["resourceVersion"] = json!(rv);
    }
    let write = Write {
        t,
        manager: manager.to_string(),
        dry_run: w.params.dry_run(),
        strict: w.params.strict(),
        apply: true,
    };
    let mut reply = commit(&mut inner, &write, old.as_ref(), new)?;
    reply.warnings.extend(pruned);
    Ok(reply)
}

// ---- deletes ----------------------------------------------------------------

fn precondition_failed(t: &Target, what: &str, want: &str, have: &str) -> ApiError {
    ApiError::conflict(
        &t.res.group,
        &t.res.plural,
        name_of(t),
        &format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
        ),
    )
}

pub fn delete(sim: &Sim, t: &Target, q: &Params, body: Option<Value>) -> ApiResult<Reply> {
    let opts = body.unwrap_or(json!({}));
    let dry_run = q.dry_run()
        || opts["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let policy = q
        .get("propagationPolicy")
        .map(String::from)
        .or_else(|| opts["propagationPolicy"].as_str().map(String::from))
        .unwrap_or_else(|| "Background".into());
    if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
        return Err(ApiError::invalid(
            "DeleteOptions.meta.k8s.io",
            "",
            &[(
                "propagationPolicy".into(),
                format!("Unsupported value: \"{policy}\""),
            )],
        ));
    }
    let mut inner = sim.store.lock();
    let obj = inner
        .get(&t.res.key(), &t.ns, name_of(t))
        .cloned()
        .ok_or_else(|| not_found(t))?;
    let pre = &opts["preconditions"];
    for (field, what) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(want) = pre[field].as_str() {
            let have = obj["metadata"][field].as_str().unwrap_or_default();
            if want != have {
                return Err(precondition_failed(t, what, want, have));
            }
        }
    }
    if dry_run {
        return Ok(Reply::ok(present(&t.res, &obj)));
    }
    let has_finalizers = obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if t.res.kind == "Namespace" && !t.res.custom {
        // Without kube-controller-manager a real namespace would stay Terminating;
        // the emulator empties it at once so tests can clean up.
        for (key, name) in inner.keys_in_namespace(name_of(t)) {
            inner.remove(&key, name_of(t), &name);
        }
    } else if has_finalizers {
        let mut o = obj.clone();
        if o["metadata"]["deletionTimestamp"].is_null() {
            o["metadata"]["deletionTimestamp"] = json!(now());
            o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if t.res.tracks_generation() {
                let g = o["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                o["metadata"]["generation"] = json!(g);
            }
            o = inner.put(&t.res, o, "MODIFIED");
        }
        return Ok(Reply::ok(present(&t.res, &o)));
    }
    if policy == "Orphan" {
        orphan_dependents(
            &mut inner,
            obj["metadata"]["uid"].as_str().unwrap_or_default(),
        );
    }
    let removed = inner
        .remove(&t.res.key(), &t.ns, name_of(t))
        .ok_or_else(|| not_found(t))?;
    after_delete(&mut inner, &t.res, &removed);
    Ok(Reply::ok(present(&t.res, &removed)))
}

fn orphan_dependents(inner: &mut Inner, uid: &str) {
    let deps: Vec<(String, Value)> = inner
        .every()
        .into_iter()
        .filter(|(.., o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["uid"].as_str() == Some(uid)))
        })
        .map(|(k, _, _, o)| (k, o.clone()))
        .collect();
    for (key, mut o) in deps {
        if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|r| r["uid"].as_str() != Some(uid));
        }
        if let Some(res) = inner.resources.iter().find(|r| r.key() == key).cloned() {
            inner.put(&res, o, "MODIFIED");
        }
    }
}

pub fn delete_collection(
    sim: &Sim,
    t: &Target,
    q: &Params,
    body: Option<Value>,
) -> ApiResult<Reply> {
    let listed = list(sim, t, q)?;
    let mut deleted = Vec::new();
    for item in listed.body["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = item["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let one = Target {
            name: Some(name),
            ns,
            ..t.clone()
        };
        match delete(sim, &one, q, body.clone()) {
            Ok(r) => deleted.push(r.body),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let _ = status::success;
    Ok(Reply::ok(json!({
        "kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
        "metadata": {"resourceVersion": sim.store.lock().rv.to_string()}, "items": deleted,
    })))
}
