//! create, update (incl. scale), patch and server-side apply.

use super::*;

pub(super) fn check_identity(t: &Target, body: &Value) -> ApiResult<()> {
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
        apply: None,
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
        apply: None,
    };
    let reply = commit(&mut inner, &write, Some(&old), new)?;
    Ok(scale_reply(t, reply))
}

pub(super) fn scaled(old: &Value, scale: &Value) -> Value {
    let mut new = old.clone();
    new["spec"]["replicas"] = scale["spec"]["replicas"].clone();
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
        new["metadata"]["resourceVersion"] = json!(rv);
    }
    new
}

pub(super) fn scale_reply(t: &Target, mut reply: Reply) -> Reply {
    if t.sub.as_deref() == Some("scale") {
        reply.body = scale_of(&t.res, &reply.body);
    }
    reply
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
        apply: None,
    };
    let reply = commit(&mut inner, &write, Some(&old), new)?;
    Ok(scale_reply(t, reply))
}

pub(super) fn conflict_error(t: &Target, conflicts: &[ssa::Conflict]) -> ApiError {
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
    e.details = Some(Box::new(d));
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
    // How kube-apiserver names the configuration when it cannot type it: from the
    // configuration's own metadata (`/web` when it names no namespace).
    let ident = format!(
        "{}/{}",
        cfg["metadata"]["namespace"].as_str().unwrap_or_default(),
        cfg["metadata"]["name"].as_str().unwrap_or_default()
    );
    let mut cfg = ssa::strip_nulls(&cfg);
    let duplicates = ssa::duplicate_keys(&cfg, t.res.ssa_schema());
    if !duplicates.is_empty() {
        // structured-merge-diff's words: one error alone, or "errors:" and a list.
        let errors = match duplicates.as_slice() {
            [one] => one.clone(),
            many => format!("errors:\n  {}", many.join("\n  ")),
        };
        return Err(ApiError::plain_500(format!(
            "failed to create typed patch object ({ident}; {}/{}, Kind={}): {errors}",
            t.res.group, t.res.version, t.res.kind
        )));
    }
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
    // The real server decodes quantities before merging, so `1024Mi` meets `1Gi` as equal.
    if !t.res.custom {
        crate::defaults::quantities_as_strings(&mut cfg, false);
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
        apply: Some(ident),
    };
    commit(&mut inner, &write, old.as_ref(), new)
}
