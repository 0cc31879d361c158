//! managedFields (`FieldsV1`): the one reader of the sets the API server
//! records for each field manager, following the server's rules.
//!
//! A set maps `f:<name>` (a field), `k:{…}` (a list item named by its
//! associative keys), `v:<json>` (a set member) or `i:<n>` (an item by index)
//! to the set below it; `.` means "the item or map itself". A field whose set
//! is empty is owned whole: a scalar, an atomic list, or an atomic map or
//! struct (`+mapType=atomic`, `+structType=atomic`, e.g. a Service's
//! `spec.selector`, recorded as `f:selector: {}`).
//!
//! Two rules of the server that a schema-free reader must follow:
//! - key fields are defaulted before the set is recorded: a Service port
//!   applied as `{port: 80}` is recorded as `k:{"port":80,"protocol":"TCP"}`;
//! - `f:x: {}` over a map is ambiguous without the schema (atomic, or every key
//!   taken by other writers), so it is judged by the live value.

use serde_json::{Map, Value};

/// The field manager relbot applies as.
pub const FIELD_MANAGER: &str = "relbot";

/// The set that `manager` holds through server-side apply on `object`.
pub fn applied_fields<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    object
        .get("metadata")?
        .get("managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
        })?
        .get("fieldsV1")
}

/// The values the server fills in for associative-key fields left out of a
/// manifest (`protocol` of Service, container and endpoint ports).
fn defaulted_key(field: &str) -> Option<Value> {
    match field {
        "protocol" => Some(Value::String("TCP".into())),
        _ => None,
    }
}

/// `80` and `"80"` name the same port in a key.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || a.to_string().trim_matches('"') == b.to_string().trim_matches('"')
}

/// Whether the list entry `entry` of a set names `item`, the `index`-th item
/// of its list. A key field the item leaves out matches the server's default
/// for it (or any value, when relbot does not know the default).
pub fn names_item(entry: &str, index: usize, item: &Value) -> bool {
    if let Some(raw) = entry.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(raw) else {
            return false;
        };
        let mut named_one = false;
        for (field, want) in &keys {
            match item.get(field) {
                Some(have) if loosely_equal(have, want) => named_one = true,
                Some(_) => return false,
                None => match defaulted_key(field) {
                    Some(default) if !loosely_equal(&default, want) => return false,
                    _ => {}
                },
            }
        }
        named_one
    } else if let Some(raw) = entry.strip_prefix("v:") {
        serde_json::from_str::<Value>(raw).is_ok_and(|v| loosely_equal(&v, item))
    } else if let Some(raw) = entry.strip_prefix("i:") {
        raw.parse::<usize>() == Ok(index)
    } else {
        false
    }
}

/// The entry of a list's set naming `item`, with its set.
fn entry_for<'a>(
    set: &'a Map<String, Value>,
    index: usize,
    item: &Value,
) -> Option<(&'a String, &'a Value)> {
    set.iter().find(|(entry, _)| names_item(entry, index, item))
}

/// `object` cut down to the fields named in a set.
pub fn project(object: &Value, fields: &Value) -> Value {
    match (object, fields.as_object()) {
        (_, None) => object.clone(),
        (_, Some(set)) if set.is_empty() || set.keys().all(|k| k == ".") => object.clone(),
        (Value::Object(map), Some(set)) => Value::Object(
            map.iter()
                .filter_map(|(name, value)| {
                    let child = set.get(&format!("f:{name}"))?;
                    Some((name.clone(), project(value, child)))
                })
                .collect(),
        ),
        (Value::Array(items), Some(set)) => Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    entry_for(set, i, item).map(|(_, child)| project(item, child))
                })
                .collect(),
        ),
        (scalar, Some(_)) => scalar.clone(),
    }
}

/// Whether a set holds every field of `body` (what relbot applies), judged
/// against `live`, the object as stored. `name`/`namespace`, `apiVersion` and
/// `kind` identify the object and are never in a set.
pub fn covers_object(fields: &Value, body: &Value, live: &Value) -> bool {
    let (Some(set), Some(body)) = (fields.as_object(), body.as_object()) else {
        return false;
    };
    body.iter().all(|(name, value)| match name.as_str() {
        "apiVersion" | "kind" => true,
        "metadata" => {
            let rest: Map<String, Value> = value
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !matches!(k.as_str(), "name" | "namespace" | "generateName"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            rest.is_empty()
                || set
                    .get("f:metadata")
                    .is_some_and(|f| covers(f, &Value::Object(rest), live.get("metadata")))
        }
        _ => field_covered(set, name, value, live.get(name)),
    })
}

fn field_covered(
    set: &Map<String, Value>,
    name: &str,
    value: &Value,
    live: Option<&Value>,
) -> bool {
    value.is_null()
        || set
            .get(&format!("f:{name}"))
            .is_some_and(|child| covers(child, value, live))
}

/// Whether the set `fields` holds every part of `value` (desired), whose
/// stored counterpart is `live`.
fn covers(fields: &Value, value: &Value, live: Option<&Value>) -> bool {
    let Some(set) = fields.as_object() else {
        return false;
    };
    match value {
        Value::Object(map) if set.keys().all(|k| k == ".") => {
            // Owned whole (atomic), or the map itself with every key taken by
            // other writers: the stored value tells them apart.
            map.is_empty() || live.is_some_and(|live| contains(live, value))
        }
        Value::Object(map) => map
            .iter()
            .all(|(name, v)| field_covered(set, name, v, live.and_then(|l| l.get(name)))),
        Value::Array(items) => {
            if set.keys().all(|k| k == ".") {
                return true; // an atomic list: owned whole
            }
            let live_items = live.and_then(Value::as_array);
            items.iter().enumerate().all(|(index, item)| {
                entry_for(set, index, item).is_some_and(|(entry, child)| {
                    let stored = live_items.and_then(|l| {
                        l.iter()
                            .enumerate()
                            .find(|(i, it)| names_item(entry, *i, it))
                            .map(|(_, it)| it)
                    });
                    covers(child, item, stored)
                })
            })
        }
        _ => true,
    }
}

/// Whether `live` holds every entry of `desired` (maps may carry more keys,
/// filled in by the server), scalars compared loosely.
fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| contains(lv, v))),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(a, b)| contains(a, b))
        }
        (l, d) => loosely_equal(l, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a real kube-apiserver (1.28 and 1.32) records for relbot's apply
    /// of a headless Service whose port leaves `protocol` out.
    fn service() -> (Value, Value, Value) {
        let body = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "n", "labels": {"a": "b"}},
            "spec": {"clusterIP": "None", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
        let fields = json!({"f:metadata": {"f:labels": {"f:a": {}}},
            "f:spec": {"f:clusterIP": {}, "f:selector": {},
                "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}":
                    {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}}}});
        let live = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "n", "labels": {"a": "b"}},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                     "type": "ClusterIP", "sessionAffinity": "None"}});
        (body, fields, live)
    }

    #[test]
    fn a_service_as_the_server_records_it_is_covered() {
        let (body, fields, live) = service();
        assert!(covers_object(&fields, &body, &live));
    }

    #[test]
    fn a_defaulted_key_field_must_match_the_default() {
        let item = json!({"port": 80});
        assert!(names_item("k:{\"port\":80,\"protocol\":\"TCP\"}", 0, &item));
        assert!(!names_item(
            "k:{\"port\":80,\"protocol\":\"UDP\"}",
            0,
            &item
        ));
        assert!(!names_item(
            "k:{\"port\":81,\"protocol\":\"TCP\"}",
            0,
            &item
        ));
        assert!(names_item(
            "k:{\"containerPort\":\"80\"}",
            0,
            &json!({"containerPort": 80})
        ));
    }

    #[test]
    fn an_atomic_map_changed_by_another_writer_is_not_covered() {
        let (body, fields, mut live) = service();
        live["spec"]["selector"] = json!({"app": "other"});
        assert!(!covers_object(&fields, &body, &live));
    }

    #[test]
    fn a_map_whose_keys_other_writers_took_is_judged_by_its_value() {
        let body = json!({"data": {"greeting": "hello"}});
        let fields = json!({"f:data": {}});
        assert!(!covers_object(
            &fields,
            &body,
            &json!({"data": {"greeting": "edited"}})
        ));
        assert!(!covers_object(&fields, &body, &json!({"data": {}})));
        let owned = json!({"f:data": {".": {}, "f:greeting": {}}});
        assert!(covers_object(
            &owned,
            &body,
            &json!({"data": {"greeting": "hello"}})
        ));
    }

    #[test]
    fn a_field_missing_from_the_set_is_not_covered() {
        let (body, mut fields, live) = service();
        fields["f:spec"]
            .as_object_mut()
            .unwrap()
            .remove("f:clusterIP");
        assert!(!covers_object(&fields, &body, &live));
    }

    #[test]
    fn atomic_lists_and_sets() {
        let body = json!({"spec": {"args": ["a"], "finalizers": ["x"]}});
        let live = body.clone();
        let fields = json!({"f:spec": {"f:args": {}, "f:finalizers": {".": {}, "v:\"x\"": {}}}});
        assert!(covers_object(&fields, &body, &live));
        let missing = json!({"f:spec": {"f:args": {}, "f:finalizers": {".": {}, "v:\"y\"": {}}}});
        assert!(!covers_object(&missing, &body, &live));
    }

    #[test]
    fn projection_keeps_only_the_named_fields_and_items() {
        let (_, fields, live) = service();
        let cut = project(&live, &fields);
        assert_eq!(
            cut["spec"]["ports"][0],
            json!({"name": "http", "port": 80, "targetPort": 8080})
        );
        assert!(cut["spec"].get("type").is_none());
        assert_eq!(cut["spec"]["selector"], json!({"app": "web"}));
    }
}
