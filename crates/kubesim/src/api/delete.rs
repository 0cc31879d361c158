//! Deletion: preconditions, finalizers, propagation and the simplified
//! garbage collector, plus what disappears with a CRD or a namespace.

use super::*;

/// Follow-ups once an object is gone: CRD kinds disappear, dependents are collected.
pub(super) fn after_delete(inner: &mut Inner, res: &ResourceInfo, obj: &Value) {
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
pub(super) fn collect_dependents(inner: &mut Inner, uid: &str) {
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

/// kube-apiserver checks delete preconditions in `rest.BeforeDelete`, which
/// names the object by its Kind (`ConfigMap`, `Deployment.apps`), not by its
/// resource, and says what may have happened.
pub(super) fn precondition_failed(t: &Target, what: &str, want: &str, have: &str) -> ApiError {
    let hint = if what == "UID" {
        "The object might have been deleted and then recreated"
    } else {
        "The object might have been modified"
    };
    // The Kind stands where `conflict` expects a resource, as in BeforeDelete's GroupResource.
    ApiError::conflict(
        &t.res.group,
        &t.res.kind,
        name_of(t),
        &format!(
            "the {what} in the precondition ({want}) does not match the {what} in record ({have}). {hint}"
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

pub(super) fn orphan_dependents(inner: &mut Inner, uid: &str) {
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
    Ok(Reply::ok(json!({
        "kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
        "metadata": {"resourceVersion": sim.store.lock().rv.to_string()}, "items": deleted,
    })))
}
