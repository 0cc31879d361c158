//! Checking a custom resource against the schema of a CustomResourceDefinition
//! that the same plan creates. The server cannot dry-run such an object
//! before its CRD exists, so without this a dry-run would pass what the sync
//! then fails. The check follows what kube-apiserver does with a structural
//! schema: `apiVersion`, `kind` and `metadata` are implicit, defaults fill
//! missing fields, `null` in a non-nullable field is dropped, fields the
//! schema does not declare are refused unless
//! `x-kubernetes-preserve-unknown-fields` keeps them, and
//! `x-kubernetes-int-or-string` takes either. The value checks proper (types,
//! enums, patterns, bounds, required) are left to the `jsonschema` crate.
//! What cannot be checked before the CRD exists (CEL rules, formats the
//! server interprets its own way, admission webhooks) is listed, not guessed.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::manifest::{Manifest, split_api_version};

/// The outcome of checking one custom resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaCheck {
    /// What the server would refuse, in its own terms (`spec.size: ...`).
    pub errors: Vec<String>,
    /// Rules of the schema this check could not evaluate, where they are.
    pub unchecked: Vec<String>,
}

/// One served version of a CRD in the plan.
struct VersionSchema {
    schema: Option<Value>,
    /// The value rules, compiled once for every resource of the version (or
    /// why they do not compile).
    validator: Result<jsonschema::Validator, String>,
    /// With a status subresource the main resource ignores `status`.
    status_subresource: bool,
}

/// The schemas of every CRD a plan declares, by (group, version, kind).
#[derive(Default)]
pub struct CrdSchemas {
    by_kind: HashMap<(String, String, String), VersionSchema>,
}

/// What cannot be checked for any custom resource of a CRD that does not
/// exist yet: the cluster may run admission webhooks for the new kind.
pub const WEBHOOKS_UNCHECKED: &str = "admission webhooks (only the server runs them)";

impl CrdSchemas {
    pub fn from_manifests<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Self {
        let mut by_kind = HashMap::new();
        for m in manifests.into_iter().filter(|m| {
            m.group() == "apiextensions.k8s.io" && m.kind() == "CustomResourceDefinition"
        }) {
            let spec = &m.object["spec"];
            let (Some(group), Some(kind)) =
                (spec["group"].as_str(), spec["names"]["kind"].as_str())
            else {
                continue;
            };
            for version in spec["versions"].as_array().into_iter().flatten() {
                let Some(name) = version["name"].as_str() else {
                    continue;
                };
                let schema = version["schema"].get("openAPIV3Schema").cloned();
                by_kind.insert(
                    (group.to_string(), name.to_string(), kind.to_string()),
                    VersionSchema {
                        validator: compile(schema.as_ref()),
                        schema,
                        status_subresource: version["subresources"].get("status").is_some(),
                    },
                );
            }
        }
        CrdSchemas { by_kind }
    }

    /// Checks `object` against the schema its CRD declares, or `None` when no
    /// CRD of the plan defines its kind and version.
    pub fn check(&self, object: &Value) -> Option<SchemaCheck> {
        let (group, version) = split_api_version(object["apiVersion"].as_str().unwrap_or(""));
        let kind = object["kind"].as_str().unwrap_or("");
        let found =
            self.by_kind
                .get(&(group.to_string(), version.to_string(), kind.to_string()))?;
        let mut check = SchemaCheck::default();
        let Some(schema) = &found.schema else {
            // A version without a schema accepts anything but keeps nothing
            // beyond the implicit fields; only v1beta1 CRDs allowed it.
            return Some(check);
        };
        let mut instance = object.clone();
        if let Some(map) = instance.as_object_mut() {
            for implicit in ["apiVersion", "kind", "metadata"] {
                map.remove(implicit);
            }
            if found.status_subresource {
                map.remove("status");
            }
        }
        prune(&mut instance, schema, "", &mut check.errors);
        unchecked_rules(schema, "", &mut check.unchecked);
        check.unchecked.push(WEBHOOKS_UNCHECKED.to_string());
        match &found.validator {
            Ok(validator) => {
                for error in validator.iter_errors(&instance) {
                    let path = dotted(&instance, error.instance_path().as_str());
                    check.errors.push(if path.is_empty() {
                        error.to_string()
                    } else {
                        format!("{path}: {error}")
                    });
                }
            }
            // The server would refuse such a CRD; its own entry says so.
            Err(error) => check
                .unchecked
                .push(format!("the whole schema (it does not compile: {error})")),
        }
        Some(check)
    }
}

/// The value rules of a structural schema as a validator: draft 4 (which
/// the OpenAPI v3 subset follows), formats left to the server.
fn compile(schema: Option<&Value>) -> Result<jsonschema::Validator, String> {
    let mut standard = to_json_schema(schema.unwrap_or(&Value::Bool(true)));
    drop_implicit(&mut standard);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(false)
        .build(&standard)
        .map_err(|e| e.to_string())
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key) == Some(&Value::Bool(true))
}

/// What the server does before validating: defaults in, nulls of
/// non-nullable fields out, undeclared fields refused (as `errors`) and
/// removed so the value checks do not report them twice.
fn prune(value: &mut Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if is_true(schema, "x-kubernetes-int-or-string") {
        return;
    }
    let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = is_true(schema, "x-kubernetes-embedded-resource");
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            if let Some(properties) = properties {
                for (name, child) in properties {
                    if !map.contains_key(name)
                        && let Some(default) = child.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                }
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let field = join(path, &key);
                if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child = properties
                    .and_then(|p| p.get(&key))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                match child {
                    Some(child) => {
                        if map[&key].is_null() && !is_true(child, "nullable") {
                            map.remove(&key);
                            continue;
                        }
                        if let Some(v) = map.get_mut(&key) {
                            prune(v, child, &field, errors);
                        }
                    }
                    None if preserve || is_true(schema, "additionalProperties") => {}
                    None => {
                        errors.push(format!("unknown field \"{field}\""));
                        map.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for (n, item) in items.iter_mut().enumerate() {
                    prune(item, item_schema, &format!("{path}[{n}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// Lists the parts of a schema only the server can evaluate.
fn unchecked_rules(schema: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "the root" } else { path };
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for rule in rules {
            let text = rule["rule"].as_str().unwrap_or("?");
            out.push(format!("CEL rule at {at}: {text}"));
        }
    }
    if let Some(format) = schema["format"].as_str() {
        out.push(format!("format {format:?} at {at}"));
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, child) in properties {
            unchecked_rules(child, &join(path, name), out);
        }
    }
    if let Some(child) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        unchecked_rules(child, &join(path, "*"), out);
    }
    if let Some(child) = schema.get("items").filter(|i| i.is_object()) {
        unchecked_rules(child, &format!("{path}[*]"), out);
    }
}

/// A Kubernetes structural schema as plain JSON Schema (draft 4, which the
/// OpenAPI v3 subset follows): `nullable` becomes a `null` type,
/// int-or-string becomes both types, Kubernetes' own keywords go.
fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        if key.starts_with("x-kubernetes-") || key == "nullable" {
            continue;
        }
        let converted = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                value
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), to_json_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .map(|a| a.iter().map(to_json_schema).collect())
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if is_true(schema, "x-kubernetes-int-or-string") {
        out.insert("type".into(), serde_json::json!(["integer", "string"]));
    }
    if is_true(schema, "x-kubernetes-embedded-resource") {
        drop_implicit_map(&mut out);
    }
    if is_true(schema, "nullable")
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), serde_json::json!([t, "null"]));
    }
    Value::Object(out)
}

/// `apiVersion`, `kind` and `metadata` are the server's to check.
fn drop_implicit(schema: &mut Value) {
    if let Some(map) = schema.as_object_mut() {
        drop_implicit_map(map);
    }
}

fn drop_implicit_map(map: &mut Map<String, Value>) {
    const IMPLICIT: [&str; 3] = ["apiVersion", "kind", "metadata"];
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for name in IMPLICIT {
            properties.remove(name);
        }
    }
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|r| !IMPLICIT.iter().any(|i| r == *i));
    }
}

/// A JSON pointer into `value` as Kubernetes writes field paths:
/// `/spec/ports/0/name` → `spec.ports[0].name`.
fn dotted(value: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut at = value;
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Value::Array(items) => {
                out.push_str(&format!("[{segment}]"));
                at = segment
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get(i))
                    .unwrap_or(&Value::Null);
            }
            _ => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&segment);
                at = at.get(&segment).unwrap_or(&Value::Null);
            }
        }
    }
    out
}

/// How many custom resources were checked against a CRD of the plan, and
/// how many of their rules only the server can evaluate.
#[derive(Default)]
pub(super) struct SchemaTally {
    objects: usize,
    cel_rules: usize,
    formats: usize,
}

impl SchemaTally {
    pub(super) fn record(&mut self, check: &SchemaCheck) {
        self.objects += 1;
        self.cel_rules += check
            .unchecked
            .iter()
            .filter(|u| u.starts_with("CEL rule"))
            .count();
        self.formats += check
            .unchecked
            .iter()
            .filter(|u| u.starts_with("format"))
            .count();
    }

    pub(super) fn note(&self) -> Option<String> {
        if self.objects == 0 {
            return None;
        }
        Some(format!(
            "{} custom resource(s) checked against the schema of a CustomResourceDefinition this plan creates; left to the server when they are applied: {} CEL rule(s), {} format check(s), admission webhooks",
            self.objects, self.cel_rules, self.formats
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use serde_json::json;

    fn crd(schema: Value) -> Manifest {
        Manifest {
            object: json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {
                    "group": "example.com",
                    "names": {"kind": "Widget", "plural": "widgets"},
                    "scope": "Namespaced",
                    "versions": [
                        {"name": "v1", "served": true, "storage": true,
                         "subresources": {"status": {}},
                         "schema": {"openAPIV3Schema": schema}},
                        {"name": "v2", "served": true, "storage": false,
                         "schema": {"openAPIV3Schema": {"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true}}}
                    ]
                }
            }),
            origin: Origin {
                file: "crd.yaml".into(),
                line: 1,
            },
        }
    }

    fn widget_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size", "mode"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "note": {"type": "string", "nullable": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "items": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}
                        }},
                        "starts": {"type": "string", "format": "date-time"}
                    },
                    "x-kubernetes-validations": [{"rule": "self.size < 100"}]
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    fn check(spec: Value) -> SchemaCheck {
        check_version("v1", spec)
    }

    fn check_version(version: &str, spec: Value) -> SchemaCheck {
        let schemas = CrdSchemas::from_manifests(&[crd(widget_schema())]);
        let widget = json!({
            "apiVersion": format!("example.com/{version}"),
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "shop", "labels": {"a": "b"}},
            "spec": spec,
            "status": {"anything": "the status subresource ignores it"},
        });
        schemas.check(&widget).expect("the plan's CRD defines it")
    }

    #[test]
    fn a_valid_resource_passes_with_implicit_fields_defaults_and_kubernetes_keywords() {
        let result = check(json!({
            "size": 3,
            "port": "http",
            "note": null,
            "labels": {"tier": "web"},
            "extra": {"whatever": {"nested": [1, 2]}},
            "items": [{"name": "abc"}],
        }));
        assert_eq!(result.errors, Vec::<String>::new());
        let numeric_port = check(json!({"size": 3, "port": 8080}));
        assert_eq!(numeric_port.errors, Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_are_refused_where_not_preserved() {
        let result = check(json!({"size": 3, "foo": 1, "items": [{"name": "a", "bar": true}]}));
        assert_eq!(
            result.errors,
            [
                "unknown field \"spec.foo\"",
                "unknown field \"spec.items[0].bar\""
            ]
        );
        // A version whose schema preserves everything keeps them.
        assert_eq!(check_version("v2", json!({"foo": 1})).errors.len(), 0);
    }

    #[test]
    fn value_errors_name_the_field_in_kubernetes_terms() {
        let result = check(json!({
            "size": "three",
            "mode": "slow",
            "port": true,
            "note": 5,
            "labels": {"tier": 1},
            "items": [{"name": "ok"}, {"name": "Not-OK"}],
        }));
        let joined = result.errors.join("\n");
        for field in [
            "spec.size: ",
            "spec.mode: ",
            "spec.port: ",
            "spec.note: ",
            "spec.labels.tier: ",
            "spec.items[1].name: ",
        ] {
            assert!(joined.contains(field), "{field} missing from:\n{joined}");
        }
        assert_eq!(result.errors.len(), 6, "{joined}");
        assert!(joined.contains("\"three\""), "{joined}");
    }

    #[test]
    fn required_fields_and_bounds() {
        let result = check(json!({"size": 0}));
        assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
        assert!(result.errors[0].starts_with("spec.size: "));
        let missing = check(json!({}));
        assert_eq!(missing.errors.len(), 1, "{:?}", missing.errors);
        assert!(missing.errors[0].starts_with("spec: ") && missing.errors[0].contains("size"));
    }

    #[test]
    fn what_only_the_server_can_check_is_listed() {
        let result = check(json!({"size": 3}));
        assert_eq!(
            result.unchecked,
            [
                "CEL rule at spec: self.size < 100",
                "format \"date-time\" at spec.starts",
                WEBHOOKS_UNCHECKED,
            ]
        );
    }

    #[test]
    fn kinds_no_crd_of_the_plan_defines_are_not_checked() {
        let schemas = CrdSchemas::from_manifests(&[crd(widget_schema())]);
        let other =
            json!({"apiVersion": "example.com/v9", "kind": "Widget", "metadata": {"name": "w"}});
        assert!(schemas.check(&other).is_none());
    }

    #[test]
    fn embedded_resources_keep_their_implicit_fields() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"template": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"data": {"type": "string"}}}}}}});
        let schemas = CrdSchemas::from_manifests(&[crd(schema)]);
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                "data": "d", "other": 1}}});
        let result = schemas.check(&widget).unwrap();
        assert_eq!(result.errors, ["unknown field \"spec.template.other\""]);
    }
}
