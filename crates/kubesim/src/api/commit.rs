//! The write path every verb shares: server-owned metadata, the status
//! split, defaults, validation, generation, ownership, no-op detection,
//! dry-run and storage.

use super::*;

pub(super) struct Write<'a> {
    pub(super) t: &'a Target,
    pub(super) manager: String,
    pub(super) dry_run: bool,
    pub(super) strict: bool,
    /// `Some("<namespace>/<name>")` of the configuration for a server-side apply.
    pub(super) apply: Option<String>,
}

pub(super) fn scope_for(res: &ResourceInfo, sub: Option<&str>) -> Scope {
    match sub {
        Some("status") => Scope::Status,
        _ if res.has_status => Scope::MainNoStatus,
        _ => Scope::Main,
    }
}

pub(super) fn strip_for_generation(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

pub(super) fn equal_ignoring_rv(a: &Value, b: &Value) -> bool {
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
pub(super) fn fix_metadata(res: &ResourceInfo, t: &Target, old: Option<&Value>, new: &mut Value) {
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
pub(super) fn fix_status(
    res: &ResourceInfo,
    sub: Option<&str>,
    old: Option<&Value>,
    new: &mut Value,
) {
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

pub(super) fn crd_status(old: Option<&Value>, new: &mut Value) {
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

pub(super) fn release_service(inner: &mut Inner, obj: &Value) {
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

/// The first node port of `new` that `old` did not hold and that lies
/// outside the default range, in the real server's words.
fn node_port_out_of_range(new: &Value, old: Option<&Value>) -> Option<(String, String)> {
    let held = |port: u64| {
        old.and_then(|o| o["spec"]["ports"].as_array())
            .is_some_and(|ports| ports.iter().any(|p| p["nodePort"].as_u64() == Some(port)))
    };
    let ports = new["spec"]["ports"].as_array()?;
    ports.iter().enumerate().find_map(|(i, p)| {
        let port = p["nodePort"].as_u64()?;
        (!(30000..=32767).contains(&port) && !held(port)).then(|| {
            (
                format!("spec.ports[{i}].nodePort"),
                format!("Invalid value: {port}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
            )
        })
    })
}

pub(super) fn missing_field(e: &str) -> Option<String> {
    let start = e.find("missing field `")? + "missing field `".len();
    let end = e[start..].find('`')? + start;
    Some(e[start..end].to_string())
}

/// Everything after the new object is assembled: defaults, validation,
/// generation, ownership, no-op detection, dry-run and storage.
pub(super) fn commit(
    inner: &mut Inner,
    w: &Write,
    old: Option<&Value>,
    mut new: Value,
) -> ApiResult<Reply> {
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
        SchemaCheck::Unknown(paths) if w.apply.is_some() || w.strict => {
            if create {
                release_service(inner, &new);
            }
            let list: Vec<String> = paths
                .iter()
                .map(|p| format!("unknown field \"{p}\""))
                .collect();
            return Err(match &w.apply {
                // Server-side apply types the configuration against the schema before
                // fieldValidation is looked at, and reports the failure as a plain
                // 500 with the first undeclared field, whatever fieldValidation says
                // (kubernetes#122480; seen on 1.28 and 1.32, built-in and custom kinds).
                Some(ident) => ApiError::plain_500(format!(
                    "failed to create typed patch object ({ident}; {}/{}, Kind={}): {}: field not declared in schema",
                    res.group,
                    res.version,
                    res.kind,
                    typed_path(&new, &paths[0], res.ssa_schema())
                )),
                None => ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    res.kind,
                    res.version,
                    res.kind,
                    list.join(", ")
                )),
            });
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
    if w.apply.is_none() {
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
    // As on the real server, a dry-run does not allocate: a node port out of
    // range passes it and only the write is refused.
    if !w.dry_run
        && res.kind == "Service"
        && let Some(cause) = node_port_out_of_range(&new, old)
    {
        if create {
            release_service(inner, &new);
        }
        return Err(ApiError::invalid(&res.kind_q(), name_of(t), &[cause]));
    }
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

pub(super) fn register_crd(inner: &mut Inner, crd: &Value) {
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

/// A path of [`validation::check_schema`] (`spec.containers[0].foo`) as
/// structured-merge-diff prints it (`.spec.containers[name="app"].foo`):
/// items of list-maps by their keys, of sets by their value.
fn typed_path(obj: &Value, dotted: &str, schema: ssa::Schema<'_>) -> String {
    let mut path: ssa::Path = Vec::new();
    let mut at = obj;
    for segment in dotted.split('.') {
        let mut parts = segment.split('[');
        let field = parts.next().unwrap_or_default();
        path.push(ssa::Pe::Field(field.to_string()));
        at = &at[field];
        for index in parts {
            let Ok(n) = index.trim_end_matches(']').parse::<usize>() else {
                return format!(".{dotted}");
            };
            let item = &at[n];
            let pe = match ssa::list_type(schema, &path) {
                ssa::ListType::Map(keys) => ssa::Pe::Key(ssa::item_key(item, &keys)),
                ssa::ListType::Set => ssa::Pe::Value(item.to_string()),
                // Atomic lists have no element identity; SMD never descends into them.
                ssa::ListType::Atomic => return format!(".{dotted}"),
            };
            path.push(pe);
            at = item;
        }
    }
    ssa::path_string(&path)
}
