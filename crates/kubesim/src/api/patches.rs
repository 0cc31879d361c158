//! Patch formats other than apply: JSON merge patch, a simplified
//! strategic merge patch and JSON patch.

use super::*;

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
pub(super) fn strategic_patch(target: &mut Value, patch: &Value, kind: &str, path: &mut ssa::Path) {
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
pub(super) fn json_patch(target: &mut Value, ops: &Value) -> ApiResult<()> {
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
