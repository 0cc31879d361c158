//! The safety net after a rewrite: read the old and new text with
//! `serde-saphyr` (an independent reading, not the span finder's tree) and
//! check that exactly the intended values changed. Anything else — a changed
//! neighbour, a lost key, a value that turned into a number — refuses.

use std::path::Path;

use serde_json::Value;

use super::RewriteError;
use super::edit::ExpectedChange;
use super::tree::parse_stream;

/// Check that `rewritten` differs from `original` in exactly the `expected`
/// scalar values. Aliases of a changed anchor may change too, to the same
/// value.
pub fn verify(
    file: &Path,
    original: &str,
    rewritten: &str,
    expected: &[ExpectedChange],
) -> Result<(), RewriteError> {
    let refuse = |reason: String| RewriteError::Verification {
        file: file.to_path_buf(),
        reason,
    };
    let before = read_values(original).map_err(|e| {
        refuse(format!(
            "the original file cannot be read for comparison: {}",
            yaml_problem(&e, original)
        ))
    })?;
    let after = read_values(rewritten).map_err(|e| {
        refuse(format!(
            "the rewritten file is not valid YAML: {}",
            yaml_problem(&e, rewritten)
        ))
    })?;
    if before.len() != after.len() {
        return Err(refuse(format!(
            "the number of YAML documents changed from {} to {}",
            before.len(),
            after.len()
        )));
    }
    let value_index = value_indexes(original)
        .map_err(|e| refuse(format!("the original file cannot be read: {}", e.message)))?;

    let mut differences = Vec::new();
    for (index, (old, new)) in before.iter().zip(&after).enumerate() {
        diff(index, old, new, &mut String::new(), &mut differences);
    }

    // Each intended change must have happened, with exactly the new value.
    let mut intended = Vec::new();
    for change in expected {
        let index = value_index
            .get(change.doc_index)
            .copied()
            .flatten()
            .ok_or_else(|| {
                refuse(format!(
                    "document {} holds no value to change",
                    change.doc_index + 1
                ))
            })?;
        let new = after[index].pointer(&change.pointer);
        if new != Some(&Value::String(change.new_value.clone())) {
            return Err(refuse(format!(
                "document {}, {}: expected the string {:?}, found {}",
                change.doc_index + 1,
                change.pointer,
                change.new_value,
                new.map_or_else(|| "nothing".to_string(), Value::to_string),
            )));
        }
        let old = before[index]
            .pointer(&change.pointer)
            .cloned()
            .unwrap_or(Value::Null);
        intended.push((index, change.pointer.as_str(), old, new.cloned()));
    }

    // Every difference must be an intended change, or an alias of one
    // (same document, same old and new value).
    for difference in differences {
        let (index, pointer, old, new) = match difference {
            Difference::Leaf {
                index,
                pointer,
                old,
                new,
            } => (index, pointer, old, new),
            Difference::Shape { index, pointer } => {
                return Err(refuse(format!(
                    "the structure of document {} changed at {}",
                    index + 1,
                    display_pointer(&pointer)
                )));
            }
        };
        let accounted = intended.iter().any(|(i, p, o, n)| {
            *i == index && (*p == pointer || (*o == old && n.as_ref() == Some(&new)))
        });
        if !accounted {
            // Values are left out: the field could hold a secret.
            return Err(refuse(format!(
                "document {}, {}: the value changed, which no image update asked for",
                index + 1,
                display_pointer(&pointer),
            )));
        }
    }
    Ok(())
}

/// `line 4: duplicate key `name` (first at line 2)…`, in the user's words.
fn yaml_problem(error: &serde_saphyr::Error, text: &str) -> String {
    let described = crate::yaml_message::describe(error, text);
    format!("line {}: {}", described.line, described.message)
}

/// All documents as JSON values. Errors carry no source snippet: the
/// default rendering quotes source lines, which could hold secrets.
fn read_values(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_multiple_with_options(text, options)
}

/// For each document of the source, its position among the values
/// `serde-saphyr` returns (it skips empty and null documents).
fn value_indexes(text: &str) -> Result<Vec<Option<usize>>, super::tree::SyntaxError> {
    let mut next = 0;
    Ok(parse_stream(text)?
        .documents
        .iter()
        .map(|doc| {
            (!doc.is_null()).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect())
}

enum Difference {
    Leaf {
        index: usize,
        pointer: String,
        old: Value,
        new: Value,
    },
    Shape {
        index: usize,
        pointer: String,
    },
}

fn diff(index: usize, old: &Value, new: &Value, pointer: &mut String, out: &mut Vec<Difference>) {
    let shape = |pointer: &str| Difference::Shape {
        index,
        pointer: pointer.to_string(),
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            if !a.keys().eq(b.keys()) {
                out.push(shape(pointer));
                return;
            }
            for ((key, x), y) in a.iter().zip(b.values()) {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                diff(index, x, y, pointer, out);
                pointer.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(shape(pointer));
                return;
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                diff(index, x, y, pointer, out);
                pointer.truncate(len);
            }
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => {
            out.push(shape(pointer));
        }
        (a, b) if a != b => out.push(Difference::Leaf {
            index,
            pointer: pointer.clone(),
            old: a.clone(),
            new: b.clone(),
        }),
        _ => {}
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "the document root"
    } else {
        pointer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(doc_index: usize, pointer: &str, new_value: &str) -> ExpectedChange {
        ExpectedChange {
            doc_index,
            pointer: pointer.to_string(),
            new_value: new_value.to_string(),
        }
    }

    #[test]
    fn accepts_exactly_the_intended_change() {
        let original = "---\n# empty\n---\na: x:1\nb: 2\n";
        let rewritten = "---\n# empty\n---\na: x:2\nb: 2\n";
        verify(
            Path::new("f.yaml"),
            original,
            rewritten,
            &[expect(1, "/a", "x:2")],
        )
        .unwrap();
    }

    #[test]
    fn refuses_an_unexpected_change() {
        let error = verify(
            Path::new("f.yaml"),
            "a: x:1\nb: secret\n",
            "a: x:2\nb: leaked\n",
            &[expect(0, "/a", "x:2")],
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("/b"), "{message}");
        assert!(
            !message.contains("secret") && !message.contains("leaked"),
            "{message}"
        );
    }

    #[test]
    fn refuses_a_missing_change_and_type_changes() {
        let same = "a: x:1\n";
        assert!(verify(Path::new("f"), same, same, &[expect(0, "/a", "x:2")]).is_err());
        let error = verify(
            Path::new("f"),
            "t: \"1.1\"\n",
            "t: 1.2\n",
            &[expect(0, "/t", "1.2")],
        )
        .unwrap_err();
        assert!(error.to_string().contains("expected the string"), "{error}");
    }

    #[test]
    fn allows_aliases_of_a_changed_anchor() {
        let original = "a: &i x:1\nb: *i\n";
        let rewritten = "a: &i x:2\nb: *i\n";
        verify(
            Path::new("f"),
            original,
            rewritten,
            &[expect(0, "/a", "x:2")],
        )
        .unwrap();
    }

    #[test]
    fn parse_errors_do_not_quote_the_source() {
        let broken = "password: hunter2\nx: [1\n";
        let error = verify(Path::new("f"), "password: hunter2\n", broken, &[]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = verify(Path::new("f"), broken, broken, &[]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn refuses_structure_changes() {
        let error = verify(Path::new("f"), "a: [1]\n", "a: [1, 2]\n", &[]).unwrap_err();
        assert!(error.to_string().contains("structure"), "{error}");
    }
}
