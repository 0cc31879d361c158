//! Diffs restricted to the fields relbot manages.
//!
//! Both sides — the live object and the object as it would be (or now is)
//! after relbot's apply — are cut down to relbot's `managedFields` set of the
//! "after" side before they are compared. Defaults the server filled in,
//! status, and fields other controllers own (an HPA's replicas) are not in
//! that set, so they never show. Secret values are redacted before anything
//! is rendered.

use serde_json::{Map, Value};

use super::inventory::{HASH_ANNOTATION, relbot_fields};
use crate::cluster::fields::project;
use crate::manifest::ObjectKey;

const REDACTED: &str = "<redacted>";
const REDACTED_CHANGED: &str = "<redacted: changed>";

fn is_secret(key: &ObjectKey) -> bool {
    key.group.is_empty() && key.kind == "Secret"
}

/// Replaces Secret values by markers that only say whether they changed.
pub fn redact_secret(key: &ObjectKey, before: &mut Value, after: &mut Value) {
    if !is_secret(key) {
        return;
    }
    for field in ["data", "stringData"] {
        let old = before
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Object(map)) = after.get_mut(field) {
            for (name, value) in map.iter_mut() {
                let changed = old.get(name).is_some_and(|o| o != value);
                *value = Value::String(if changed { REDACTED_CHANGED } else { REDACTED }.into());
            }
        }
        if let Some(Value::Object(map)) = before.get_mut(field) {
            for value in map.values_mut() {
                *value = Value::String(REDACTED.into());
            }
        }
    }
}

/// Fields that change with every change and would only add noise.
fn drop_bookkeeping(object: &mut Value) {
    if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
        annotations.remove(HASH_ANNOTATION);
        if annotations.is_empty() {
            object["metadata"]
                .as_object_mut()
                .map(|m| m.remove("annotations"));
        }
    }
    if let Some(Value::Object(metadata)) = object.get_mut("metadata")
        && metadata.is_empty()
    {
        object.as_object_mut().map(|o| o.remove("metadata"));
    }
}

/// The YAML unified diff between `live` (absent: a creation) and `after`,
/// over relbot's fields of `after`. `None` when they do not differ.
pub fn object_diff(key: &ObjectKey, live: Option<&Value>, after: &Value) -> Option<String> {
    let fields = relbot_fields(after).cloned().unwrap_or(Value::Null);
    let cut = |object: &Value| {
        let mut projected = if fields.is_null() {
            object.clone()
        } else {
            project(object, &fields)
        };
        if let Some(map) = projected.as_object_mut() {
            map.remove("status");
            if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
                metadata.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "labels" | "annotations" | "finalizers" | "ownerReferences"
                    )
                });
            }
        }
        // A Secret's stringData is write-only: the server stores it as data,
        // so relbot's fields (f:stringData) match nothing in either object.
        // Compare the data keys relbot wrote either way.
        if is_secret(key)
            && let (Some(Value::Object(data)), Some(map)) =
                (object.get("data"), projected.as_object_mut())
        {
            let ours: Map<String, Value> = data
                .iter()
                .filter(|(name, _)| {
                    ["f:data", "f:stringData"]
                        .iter()
                        .any(|f| fields[*f].get(format!("f:{name}")).is_some())
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            map.remove("stringData");
            if !ours.is_empty() {
                map.insert("data".into(), Value::Object(ours));
            }
        }
        drop_bookkeeping(&mut projected);
        projected
    };
    let mut before = live.map(cut).unwrap_or(Value::Null);
    let mut after = cut(after);
    redact_secret(key, &mut before, &mut after);
    if before == after {
        return None;
    }
    let to_yaml = |v: &Value| match v {
        Value::Null => String::new(),
        v => serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# cannot render: {e}\n")),
    };
    let (old, new) = (to_yaml(&before), to_yaml(&after));
    let text = similar::TextDiff::from_lines(&old, &new);
    let header_old = if live.is_some() {
        format!("live {key}")
    } else {
        "/dev/null".to_string()
    };
    let rendered = text
        .unified_diff()
        .context_radius(3)
        .header(&header_old, &format!("desired {key}"))
        .to_string();
    Some(rendered)
}

/// Changed lines of a unified diff (`+`/`-`, headers excluded).
pub fn changed_lines(diff: &str) -> usize {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: "x".into(),
        }
    }

    fn with_fields(mut object: Value, fields: Value) -> Value {
        object["metadata"]["managedFields"] = json!([
            {"manager": "relbot", "operation": "Apply", "fieldsV1": fields},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        object
    }

    #[test]
    fn only_relbot_fields_show_and_an_image_change_is_one_line() {
        let fields = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}});
        let live = json!({"metadata": {"name": "x", "uid": "1"}, "spec": {"replicas": 7, "template": {"spec": {
            "containers": [{"name": "web", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"readyReplicas": 7}});
        let mut after = live.clone();
        after["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        let after = with_fields(after, fields);
        let diff = object_diff(&key("Deployment"), Some(&live), &after).expect("a diff");
        assert_eq!(changed_lines(&diff), 2, "{diff}");
        assert!(
            diff.contains("-          image: nginx:1.26") || diff.contains("image: nginx:1.26"),
            "{diff}"
        );
        assert!(
            !diff.contains("replicas")
                && !diff.contains("imagePullPolicy")
                && !diff.contains("readyReplicas")
        );
    }

    #[test]
    fn equal_projection_is_no_diff() {
        let fields = json!({"f:data": {"f:a": {}}});
        let live = json!({"metadata": {"name": "x"}, "data": {"a": "1", "other": "z"}});
        let mut after = live.clone();
        after["data"]["other"] = json!("changed by someone else");
        assert_eq!(
            object_diff(&key("ConfigMap"), Some(&live), &with_fields(after, fields)),
            None
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let fields = json!({"f:data": {"f:password": {}, "f:user": {}}});
        let live = json!({"metadata": {"name": "x"}, "data": {"password": "c2VjcmV0", "user": "YWRtaW4="}});
        let after = with_fields(
            json!({"metadata": {"name": "x"}, "data": {"password": "bmV3", "user": "YWRtaW4="}}),
            fields,
        );
        let diff = object_diff(&key("Secret"), Some(&live), &after).unwrap();
        assert!(
            !diff.contains("c2VjcmV0") && !diff.contains("bmV3") && !diff.contains("YWRtaW4="),
            "{diff}"
        );
        assert!(diff.contains("<redacted: changed>"));
        assert_eq!(changed_lines(&diff), 2, "{diff}");
    }

    /// Applied as stringData, stored as data: the change still shows,
    /// redacted, instead of "values already equal".
    #[test]
    fn secret_string_data_changes_show_redacted() {
        let fields = json!({"f:stringData": {"f:token": {}}, "f:type": {}});
        let live = json!({"metadata": {"name": "x"}, "type": "Opaque", "data": {"token": "b2xk"}});
        let after = with_fields(
            json!({"metadata": {"name": "x"}, "type": "Opaque", "data": {"token": "bmV3"}}),
            fields,
        );
        let diff = object_diff(&key("Secret"), Some(&live), &after).expect("a diff");
        assert!(diff.contains("<redacted: changed>"), "{diff}");
        assert!(!diff.contains("b2xk") && !diff.contains("bmV3"), "{diff}");
        let same = with_fields(live.clone(), json!({"f:stringData": {"f:token": {}}}));
        assert_eq!(object_diff(&key("Secret"), Some(&live), &same), None);
        // A key another owner writes stays out, as for any field.
        let mut theirs = live.clone();
        theirs["data"]["ca.crt"] = json!("Y2E=");
        let theirs = with_fields(theirs, json!({"f:stringData": {"f:token": {}}}));
        assert_eq!(object_diff(&key("Secret"), Some(&live), &theirs), None);
    }

    #[test]
    fn creation_diffs_against_nothing() {
        let after = with_fields(
            json!({"metadata": {"name": "x"}, "data": {"a": "1"}}),
            json!({"f:data": {"f:a": {}}}),
        );
        let diff = object_diff(&key("ConfigMap"), None, &after).unwrap();
        assert!(diff.starts_with("--- /dev/null"), "{diff}");
        assert!(
            diff.contains("+  a: '1'") || diff.contains("+  a: \"1\""),
            "{diff}"
        );
    }
}
