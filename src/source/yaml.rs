//! YAML (and JSON, which is YAML) text → documents, each with its line.
//!
//! Two passes by design: the fast one turns every document into a
//! `serde_json::Value` and remembers where it starts; the span-aware one
//! ([`LineIndex`]) records the line of every key and sequence item and is only
//! built when a problem needs to point inside an object (an unknown field, a
//! bad annotation). Rendering thousands of valid objects never pays for it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// One step into an object: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// `spec.template.spec.containers[0].image`: how a field is named in messages.
pub fn display_path(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Converts the path of a failed typed deserialisation.
pub(crate) fn path_from_serde(path: &serde_path_to_error::Path) -> Vec<PathSeg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(PathSeg::Index(*index)),
            Segment::Map { key } => Some(PathSeg::Key(key.clone())),
            Segment::Enum { variant } => Some(PathSeg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// One non-empty document of a YAML stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    /// 1-based line where the document's content starts (its first key for a
    /// mapping), which is where an editor should jump to.
    pub line: usize,
}

/// Text that is not valid YAML, or a document that cannot be represented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based; 0 when the parser could not tell.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // We print file:line:column ourselves; the snippet would repeat the text.
    options.with_snippet = false;
    // Two documents run together without `---` show up as a repeated
    // `apiVersion`/`kind`: make that an error instead of "last one wins".
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options
}

fn yaml_error(e: &serde_saphyr::Error, text: &str) -> YamlError {
    let described = crate::yaml_message::describe(e, text);
    YamlError {
        line: described.line,
        column: described.column,
        message: described.message,
    }
}

/// Parses every document of `text`; empty and `null` documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let docs: Vec<Spanned<Value>> = serde_saphyr::from_multiple_with_options(text, options())
        .map_err(|e| yaml_error(&e, text))?;
    Ok(docs
        .into_iter()
        .filter(|d| !d.value.is_null())
        .map(|d| Document {
            line: d.referenced.line() as usize,
            value: d.value,
        })
        .collect())
}

/// Lines of every key and sequence item, per document.
#[derive(Debug, Default)]
pub struct LineIndex {
    documents: Vec<(usize, Node)>,
}

/// The shape of a document with lines and nothing else (values are not kept).
#[derive(Debug)]
enum Node {
    Scalar,
    /// Each item with its line.
    Seq(Vec<(usize, Node)>),
    /// Each key with the line of the key.
    Map(Vec<(String, usize, Node)>),
}

impl LineIndex {
    /// Parses `text` keeping only positions.
    pub fn build(text: &str) -> Result<Self, YamlError> {
        let docs: Vec<Spanned<Node>> = serde_saphyr::from_multiple_with_options(text, options())
            .map_err(|e| yaml_error(&e, text))?;
        Ok(Self {
            documents: docs
                .into_iter()
                .map(|d| (d.referenced.line() as usize, d.value))
                .collect(),
        })
    }

    /// The line of the deepest part of `path` found in the document that
    /// starts at `document_line`; `None` if there is no such document.
    pub fn line_of(&self, document_line: usize, path: &[PathSeg]) -> Option<usize> {
        let (mut line, mut node) = self
            .documents
            .iter()
            .find(|(l, _)| *l == document_line)
            .map(|(l, n)| (*l, n))?;
        for seg in path {
            let next = match (seg, node) {
                (PathSeg::Key(k), Node::Map(entries)) => entries
                    .iter()
                    .find(|(key, _, _)| key == k)
                    .map(|(_, l, n)| (*l, n)),
                (PathSeg::Index(i), Node::Seq(items)) => items.get(*i).map(|(l, n)| (*l, n)),
                _ => None,
            };
            match next {
                Some((l, n)) => {
                    line = l;
                    node = n;
                }
                None => break,
            }
        }
        Some(line)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

macro_rules! scalar {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method<E: de::Error>(self, _: $ty) -> Result<Node, E> { Ok(Node::Scalar) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128, visit_u128: u128,
        visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push((item.referenced.line() as usize, item.value));
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.value.0, key.referenced.line() as usize, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text, whatever scalar type YAML resolved it to.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
                Ok(KeyText("null".into()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_start_at_their_first_key_and_empty_ones_are_skipped() {
        let text = "# header\n---\napiVersion: v1\nkind: A\n---\n---\nnull\n---\n~\n---\n# only a comment\n---\napiVersion: v1\nkind: B\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(
            (docs[0].line, docs[0].value["kind"].clone()),
            (3, json!("A"))
        );
        assert_eq!(
            (docs[1].line, docs[1].value["kind"].clone()),
            (13, json!("B"))
        );
    }

    #[test]
    fn json_is_yaml() {
        let docs = parse_documents(
            "\n{\"apiVersion\": \"v1\",\n \"kind\": \"X\", \"a\": [1, 2.5, null, true]}\n",
        )
        .unwrap();
        assert_eq!(
            docs[0].value,
            json!({"apiVersion": "v1", "kind": "X", "a": [1, 2.5, null, true]})
        );
        assert_eq!(docs[0].line, 2);
    }

    #[test]
    fn repeated_key_is_an_error_at_the_repeat() {
        let text = "apiVersion: v1\nkind: A\nmetadata:\n  name: a\napiVersion: v1\nkind: B\n";
        let e = parse_documents(text).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("apiVersion"), "{e}");
    }

    #[test]
    fn bad_indentation_names_line_and_column() {
        let e = parse_documents("apiVersion: v1\nkind: A\nmetadata:\n  name: a\n   labels: x\n")
            .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.column > 0, "{e}");
    }

    #[test]
    fn scalars_resolve_like_kubernetes_expects() {
        let v = &parse_documents("a: \"1\"\nb: 1\nc: true\nd: 1.5\ne: 512Mi\nf: null\n").unwrap()
            [0]
        .value;
        assert_eq!(
            v,
            &json!({"a": "1", "b": 1, "c": true, "d": 1.5, "e": "512Mi", "f": null})
        );
    }

    #[test]
    fn line_index_points_at_keys_and_items() {
        let text = "a: 1\n---\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          image: y\n      image: z\n";
        let index = LineIndex::build(text).unwrap();
        let key = |k: &str| PathSeg::Key(k.into());
        let path = [key("spec"), key("template"), key("spec"), key("image")];
        assert_eq!(index.line_of(3, &path), Some(10));
        let path = [
            key("spec"),
            key("template"),
            key("spec"),
            key("containers"),
            PathSeg::Index(0),
            key("image"),
        ];
        assert_eq!(index.line_of(3, &path), Some(9));
        assert_eq!(index.line_of(3, &[key("spec"), key("missing")]), Some(4));
        assert_eq!(index.line_of(1, &[key("a")]), Some(1));
        assert_eq!(index.line_of(2, &[]), None);
        assert_eq!(
            display_path(&path),
            "spec.template.spec.containers[0].image"
        );
    }
}
