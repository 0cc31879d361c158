//! The FieldsV1 encoding of field sets: `f:<field>`, `k:<key json>`,
//! `v:<value json>`, and `.` for a node that is itself a member.

use serde_json::{Map, Value, json};

use crate::ssa::{FieldSet, Path, Pe};

fn pe_key(pe: &Pe) -> String {
    match pe {
        Pe::Field(f) => format!("f:{f}"),
        Pe::Key(k) => format!("k:{k}"),
        Pe::Value(v) => format!("v:{v}"),
    }
}

/// Encodes a field set as a FieldsV1 object.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for pe in path {
            node = node
                .entry(pe_key(pe))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fieldsV1 nodes are objects");
        }
        node.insert(".".into(), json!({}));
    }
    // `.` alone on a leaf is written as `{}`.
    fn tidy(m: &mut Map<String, Value>) {
        for v in m.values_mut() {
            if let Some(child) = v.as_object_mut() {
                if child.len() == 1 && child.contains_key(".") {
                    child.clear();
                } else {
                    tidy(child);
                }
            }
        }
    }
    tidy(&mut root);
    Value::Object(root)
}

/// Decodes a FieldsV1 object.
pub fn decode(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Path::new();
    if let Some(m) = v.as_object() {
        decode_node(m, &mut path, &mut out);
    }
    out
}

fn decode_node(m: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
    for (k, child) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        let pe = if let Some(f) = k.strip_prefix("f:") {
            Pe::Field(f.into())
        } else if let Some(j) = k.strip_prefix("k:") {
            Pe::Key(
                serde_json::from_str::<Value>(j)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| j.into()),
            )
        } else if let Some(j) = k.strip_prefix("v:") {
            Pe::Value(j.into())
        } else {
            continue;
        };
        path.push(pe);
        match child.as_object() {
            Some(cm) if !cm.is_empty() => decode_node(cm, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}
