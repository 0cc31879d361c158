//! Server-side apply: field sets per manager in the FieldsV1 encoding, conflict
//! detection, merging with list-map keys, and ownership for non-apply writes.
//!
//! kube-apiserver derives list semantics from the OpenAPI schema; kubesim keeps
//! a small table of the associative lists relbot meets (see [`list_type`]) and
//! treats every other list as atomic, which is also the default for CRDs.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

pub use crate::fieldsv1::{decode, encode};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pe {
    /// `f:name`
    Field(String),
    /// `k:{"name":"app"}` (canonical JSON of the key fields)
    Key(String),
    /// `v:"value"` (canonical JSON of a set-list item)
    Value(String),
}

pub type Path = Vec<Pe>;
/// Every member path: leaves, list items and free-form map nodes.
pub type FieldSet = BTreeSet<Path>;

#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Which writer a field set belongs to (the part of a managedFields entry that identifies it).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

fn last_field(path: &[Pe]) -> Option<&str> {
    match path.last() {
        Some(Pe::Field(f)) => Some(f),
        _ => None,
    }
}

fn under_container(parent: &[Pe]) -> bool {
    let n = parent.len();
    n >= 2
        && matches!(parent[n - 1], Pe::Key(_))
        && matches!(&parent[n - 2], Pe::Field(f)
            if f == "containers" || f == "initContainers" || f == "ephemeralContainers")
}

/// Where list semantics come from: kubesim's table for built-in kinds, the
/// CRD's structural schema (`x-kubernetes-list-type`) for custom resources.
#[derive(Debug, Clone, Copy)]
pub enum Schema<'a> {
    Builtin(&'a str),
    Custom(Option<&'a Value>),
}

fn keys(k: &[&str]) -> ListType {
    ListType::Map(k.iter().map(|s| s.to_string()).collect())
}

/// The schema node at `path` (properties, additionalProperties, items).
fn schema_at<'a>(root: &'a Value, path: &[Pe]) -> Option<&'a Value> {
    let mut node = root;
    for pe in path {
        node = match pe {
            Pe::Field(f) => node["properties"]
                .get(f)
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?,
            Pe::Key(_) | Pe::Value(_) => node.get("items")?,
        };
    }
    Some(node)
}

/// List semantics for the list at `path`.
pub fn list_type(schema: Schema<'_>, path: &[Pe]) -> ListType {
    let Some(name) = last_field(path) else {
        return ListType::Atomic;
    };
    if path.len() == 2 && path[0] == Pe::Field("metadata".into()) {
        return match name {
            "finalizers" => ListType::Set,
            "ownerReferences" => keys(&["uid"]),
            _ => ListType::Atomic,
        };
    }
    let kind = match schema {
        Schema::Builtin(kind) => kind,
        Schema::Custom(root) => {
            let node = root.and_then(|r| schema_at(r, path));
            return match node.and_then(|n| n["x-kubernetes-list-type"].as_str()) {
                Some("map") => ListType::Map(
                    node.and_then(|n| n["x-kubernetes-list-map-keys"].as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect(),
                ),
                Some("set") => ListType::Set,
                _ => ListType::Atomic,
            };
        }
    };
    let parent = &path[..path.len() - 1];
    match name {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumeDevices" => keys(&["devicePath"]),
        "ports" if under_container(parent) => keys(&["containerPort", "protocol"]),
        "ports" if kind == "Service" && path.len() == 2 => keys(&["port", "protocol"]),
        "conditions" => keys(&["type"]),
        _ => ListType::Atomic,
    }
}

/// Structs the schema marks atomic (`+structType=atomic`, `x-kubernetes-map-type: atomic`):
/// owned and replaced whole, like a scalar. `metav1.LabelSelector` is the one relbot meets.
pub fn atomic_struct(schema: Schema<'_>, path: &[Pe]) -> bool {
    match schema {
        Schema::Builtin(kind) => match last_field(path) {
            Some("selector") => !(kind == "Service" && path.len() == 2),
            Some("podSelector" | "namespaceSelector" | "labelSelector") => true,
            _ => false,
        },
        Schema::Custom(root) => root.and_then(|r| schema_at(r, path)).is_some_and(|n| {
            n["x-kubernetes-map-type"] == "atomic" || n["x-kubernetes-struct-type"] == "atomic"
        }),
    }
}

fn default_key_value(field: &str) -> Option<Value> {
    (field == "protocol").then(|| json!("TCP"))
}

/// Canonical key JSON for a list-map item, defaulting `protocol` like the real server.
pub fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k).cloned().or_else(|| default_key_value(k)) {
            m.insert(k.clone(), v);
        }
    }
    Value::Object(m).to_string()
}

fn item_matches(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    key.iter().all(|(k, v)| {
        item.get(k)
            .cloned()
            .or_else(|| default_key_value(k))
            .as_ref()
            == Some(v)
    })
}

/// Which parts of an object field sets cover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// Everything except status (main resource of a kind with a status subresource).
    MainNoStatus,
    /// Everything (kinds without a status subresource).
    Main,
    /// Only `.status`.
    Status,
}

/// The field set of `obj`.
pub fn field_set(obj: &Value, schema: Schema<'_>, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    for (k, v) in m {
        let keep = match (scope, k.as_str()) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, k) => k == "status",
            (Scope::MainNoStatus, "status") => false,
            _ => true,
        };
        if !keep {
            continue;
        }
        let mut path = vec![Pe::Field(k.clone())];
        if k == "metadata" {
            for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                if let Some(mv) = v.get(mk) {
                    path.push(Pe::Field(mk.into()));
                    walk(mv, &mut path, schema, &mut out);
                    path.pop();
                }
            }
        } else {
            walk(v, &mut path, schema, &mut out);
        }
    }
    out
}

fn walk(v: &Value, path: &mut Path, schema: Schema<'_>, out: &mut FieldSet) {
    match v {
        Value::Object(_) if atomic_struct(schema, path) => {
            out.insert(path.clone());
        }
        Value::Object(m) if !m.is_empty() => {
            for (k, cv) in m {
                path.push(Pe::Field(k.clone()));
                walk(cv, path, schema, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match list_type(schema, path) {
            ListType::Map(keys) => {
                for item in items {
                    path.push(Pe::Key(item_key(item, &keys)));
                    out.insert(path.clone());
                    if let Some(m) = item.as_object() {
                        for (k, cv) in m {
                            path.push(Pe::Field(k.clone()));
                            walk(cv, path, schema, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            ListType::Set => {
                for item in items {
                    path.push(Pe::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Atomic => {
                out.insert(path.clone());
            }
        },
        Value::Null => {}
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Keyed-list entries of an apply configuration that share a key, in the
/// real server's words (`.spec.template.spec.containers[name="web"].ports:
/// duplicate entries for key [containerPort=80,protocol="TCP"]`). The server
/// refuses such a configuration; a create or update keeps both entries.
pub fn duplicate_keys(cfg: &Value, schema: Schema<'_>) -> Vec<String> {
    fn visit(v: &Value, path: &mut Path, schema: Schema<'_>, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                // In field-name order, as the server reports them.
                let mut fields: Vec<_> = m.iter().collect();
                fields.sort_unstable_by_key(|(k, _)| *k);
                for (k, cv) in fields {
                    path.push(Pe::Field(k.clone()));
                    visit(cv, path, schema, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                let ListType::Map(keys) = list_type(schema, path) else {
                    return;
                };
                let mut seen = BTreeSet::new();
                for item in items {
                    let key = item_key(item, &keys);
                    if !seen.insert(key.clone()) {
                        let shown = path_string(&[Pe::Key(key.clone())]);
                        out.push(format!(
                            "{}: duplicate entries for key {shown}",
                            path_string(path)
                        ));
                    }
                    path.push(Pe::Key(key));
                    visit(item, path, schema, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    visit(cfg, &mut Vec::new(), schema, &mut out);
    out
}

/// The value at `path`, if present.
pub fn get<'a>(v: &'a Value, path: &[Pe]) -> Option<&'a Value> {
    let mut cur = v;
    for pe in path {
        cur = match pe {
            Pe::Field(f) => cur.get(f)?,
            Pe::Key(k) => cur.as_array()?.iter().find(|i| item_matches(i, k))?,
            Pe::Value(s) => {
                let want: Value = serde_json::from_str(s).ok()?;
                cur.as_array()?.iter().find(|i| **i == want)?
            }
        };
    }
    Some(cur)
}

/// Removes the field or list item at `path` (a no-op when absent).
pub fn remove(v: &mut Value, path: &[Pe]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for pe in parent_path {
        let next = match pe {
            Pe::Field(f) => cur.get_mut(f),
            Pe::Key(k) => cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_matches(i, k))),
            Pe::Value(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Pe::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Pe::Key(k) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|i| !item_matches(i, k));
            }
        }
        Pe::Value(s) => {
            if let (Some(a), Ok(want)) = (cur.as_array_mut(), serde_json::from_str::<Value>(s)) {
                a.retain(|i| *i != want);
            }
        }
    }
}

/// Merges an apply configuration into the live object.
pub fn merge(live: &Value, cfg: &Value, schema: Schema<'_>) -> Value {
    let mut path = Path::new();
    merge_at(live, cfg, &mut path, schema)
}

fn merge_at(live: &Value, cfg: &Value, path: &mut Path, schema: Schema<'_>) -> Value {
    match (live, cfg) {
        (Value::Object(_), Value::Object(_)) if atomic_struct(schema, path) => strip_nulls(cfg),
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    continue;
                }
                path.push(Pe::Field(k.clone()));
                let merged = merge_at(l.get(k).unwrap_or(&Value::Null), cv, path, schema);
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match list_type(schema, path) {
            ListType::Map(keys) => {
                let mut out = l.clone();
                for item in c {
                    let key = item_key(item, &keys);
                    match out.iter().position(|i| item_key(i, &keys) == key) {
                        Some(pos) => {
                            path.push(Pe::Key(key));
                            out[pos] = merge_at(&l[pos].clone(), item, path, schema);
                            path.pop();
                        }
                        None => out.push(strip_nulls(item)),
                    }
                }
                Value::Array(out)
            }
            ListType::Set => {
                let mut out = l.clone();
                for item in c {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Atomic => cfg.clone(),
        },
        _ => strip_nulls(cfg),
    }
}

pub fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        _ => v.clone(),
    }
}

/// `.spec.template.spec.containers[name="app"].image`, as conflict messages print paths.
pub fn path_string(path: &[Pe]) -> String {
    let mut s = String::new();
    for pe in path {
        match pe {
            Pe::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Pe::Key(k) => {
                let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                    Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => vec![k.clone()],
                };
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Pe::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// True if `set` holds `path` or anything below it.
pub fn covers_or_below(set: &FieldSet, path: &Path) -> bool {
    set.range(path.clone()..)
        .next()
        .is_some_and(|p| p.starts_with(path))
}

/// Reads `metadata.managedFields`.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().map(String::from),
            set: decode(&e["fieldsV1"]),
        })
        .collect()
}

/// Writes `metadata.managedFields` (dropping entries that own nothing).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": encode(&e.set),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if obj.is_object() && obj.get("metadata").is_none() && !list.is_empty() {
        obj["metadata"] = json!({});
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn same_writer(e: &Entry, manager: &str, operation: &str, sub: Option<&str>) -> bool {
    e.manager == manager && e.operation == operation && e.subresource.as_deref() == sub
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The manager as kube-apiserver prints it: `"kubectl" with subresource "scale" using apps/v1 at <time>`.
    pub manager: String,
    pub path: String,
}

fn describe(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if let Some(sub) = &e.subresource {
        s.push_str(&format!(" with subresource {sub:?}"));
    }
    if e.operation == "Update" {
        s.push_str(&format!(" using {} at {}", e.api_version, e.time));
    }
    s
}

/// Who is applying, and how.
pub struct ApplyCtx<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub force: bool,
    pub now: &'a str,
    pub schema: Schema<'a>,
    pub scope: Scope,
}

/// Applies `cfg` over `live` (`Value::Null` when creating). Returns the new object
/// (without defaults) with managedFields updated, or the conflicts.
pub fn apply(live: &Value, cfg: &Value, ctx: &ApplyCtx) -> Result<Value, Vec<Conflict>> {
    let mut entries = read_entries(live);
    let new_set = field_set(cfg, ctx.schema, ctx.scope);
    let base = if live.is_null() {
        json!({})
    } else {
        live.clone()
    };
    let mut merged = merge(&base, cfg, ctx.schema);

    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if same_writer(e, ctx.manager, "Apply", ctx.subresource) {
            continue;
        }
        for p in new_set.intersection(&e.set) {
            let before = get(&base, p);
            let after = get(&merged, p);
            // Set members are leaves, atomic structs included; list items are not.
            let is_leaf = !matches!(p.last(), Some(Pe::Key(_) | Pe::Value(_)));
            if is_leaf && before != after {
                conflicts.push(Conflict {
                    manager: describe(e),
                    path: path_string(p),
                });
                taken.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !ctx.force {
        return Err(conflicts);
    }
    for (i, p) in taken {
        entries[i].set.remove(&p);
    }

    let mine = entries
        .iter()
        .position(|e| same_writer(e, ctx.manager, "Apply", ctx.subresource));
    let old_set = mine.map(|i| entries[i].set.clone()).unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != mine)
        .flat_map(|(_, e)| e.set.iter().cloned())
        .collect();
    // Shallowest first: a list item goes whole, before removing its key fields
    // could make it unrecognisable.
    let mut dropped: Vec<&Path> = old_set.difference(&new_set).collect();
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        if !covers_or_below(&others, p) {
            remove(&mut merged, p);
        }
    }

    match mine {
        Some(i) => {
            if entries[i].set != new_set || entries[i].api_version != ctx.api_version {
                entries[i].set = new_set;
                entries[i].time = ctx.now.into();
                entries[i].api_version = ctx.api_version.into();
            }
        }
        None => entries.push(Entry {
            manager: ctx.manager.into(),
            operation: "Apply".into(),
            api_version: ctx.api_version.into(),
            time: ctx.now.into(),
            subresource: ctx.subresource.map(String::from),
            set: new_set,
        }),
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Records a non-apply write from `old` (Null on create) to `new`: the writer gets
/// an `Update` entry for the fields it changed, and everybody else loses them.
pub fn record_update(old: &Value, new: &mut Value, ctx: &ApplyCtx) {
    let mut entries = read_entries(old);
    let new_set = field_set(new, ctx.schema, ctx.scope);
    let old_set = field_set(old, ctx.schema, ctx.scope);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| match p.last() {
            Some(Pe::Key(_) | Pe::Value(_)) => !old_set.contains(*p),
            _ => get(old, p) != get(new, p),
        })
        .cloned()
        .collect();
    let mut changed = changed;
    // Update entries also own the maps and structs they brought into being (`.: {}`).
    let created: Vec<Path> = changed
        .iter()
        .flat_map(|p| (1..p.len()).map(move |n| p[..n].to_vec()))
        .filter(|q| matches!(q.last(), Some(Pe::Field(_))))
        .filter(|q| get(old, q).is_none() && matches!(get(new, q), Some(Value::Object(_))))
        .collect();
    changed.extend(created);
    let removed: Vec<Path> = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        for p in &changed {
            e.set.remove(p);
        }
        for p in &removed {
            e.set.retain(|q| !q.starts_with(p));
        }
    }
    match entries
        .iter()
        .position(|e| same_writer(e, ctx.manager, "Update", ctx.subresource))
    {
        Some(i) => {
            entries[i].set.extend(changed);
            entries[i].time = ctx.now.into();
            entries[i].api_version = ctx.api_version.into();
        }
        None if !changed.is_empty() => entries.push(Entry {
            manager: ctx.manager.into(),
            operation: "Update".into(),
            api_version: ctx.api_version.into(),
            time: ctx.now.into(),
            subresource: ctx.subresource.map(String::from),
            set: changed,
        }),
        None => {}
    }
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_list_maps_like_the_real_server() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "labels": {"app": "a"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "x", "ports": [{"containerPort": 80}]}]}}}});
        let set = field_set(&obj, Schema::Builtin("Deployment"), Scope::MainNoStatus);
        let enc = encode(&set);
        let c = &enc["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert_eq!(
            c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"],
            json!({})
        );
        // Apply sets mark list items only; maps are not members themselves.
        assert_eq!(enc["f:metadata"]["f:labels"], json!({"f:app": {}}));
        assert_eq!(decode(&enc), set);
    }

    #[test]
    fn path_strings_name_list_items() {
        let p = vec![
            Pe::Field("spec".into()),
            Pe::Field("containers".into()),
            Pe::Key("{\"name\":\"app\"}".into()),
            Pe::Field("image".into()),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"app\"].image");
    }
}

#[cfg(test)]
mod removal_tests {
    use super::*;

    #[test]
    fn dropped_list_items_are_removed() {
        let ctx = ApplyCtx {
            manager: "m",
            api_version: "apps/v1",
            subresource: None,
            force: false,
            now: "t",
            schema: Schema::Builtin("Deployment"),
            scope: Scope::MainNoStatus,
        };
        let two = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a"}, {"name": "side", "image": "b"}]}}}});
        let one = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a"}]}}}});
        let first = apply(&Value::Null, &two, &ctx).unwrap();
        let second = apply(&first, &one, &ctx).unwrap();
        assert_eq!(
            second["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "{second}"
        );
    }
}
