//! A read-only YAML tree that remembers where every node sits in the source.
//!
//! `serde-saphyr` turns YAML into values but forgets positions; rewriting
//! needs the exact byte range of a scalar. This module replays the
//! `granit-parser` event stream (the parser under `serde-saphyr`) into a
//! small arena per document, keeping each node's byte span, anchor and
//! parent, plus the document's comments (for marker comments).

use std::collections::HashMap;
use std::ops::Range;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// Index of a node inside [`Document::nodes`].
pub(crate) type NodeId = usize;

/// One step from a parent to a child: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Sequence(Vec<NodeId>),
    /// Entries in source order; keys are nodes too (usually plain scalars).
    Mapping(Vec<(NodeId, NodeId)>),
    /// `*name`: the id of the anchored node it stands for.
    Alias(NodeId),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Bytes of the node in the source. For quoted scalars this includes the
    /// quotes; for collections only the opening token is reliable.
    pub span: Range<usize>,
    /// Where this node hangs in its document; `None` for the root and for
    /// mapping keys.
    pub parent: Option<(NodeId, Segment)>,
}

/// A comment in the source: the text after `#` and the bytes of `#...`.
#[derive(Debug)]
pub(crate) struct Comment {
    pub text: String,
    pub span: Range<usize>,
}

/// One YAML document of a stream.
#[derive(Debug, Default)]
pub(crate) struct Document {
    pub nodes: Vec<Node>,
    pub root: Option<NodeId>,
}

/// A parsed stream: its documents and all its comments. Comments are kept
/// for the whole stream because the parser may report a comment at a
/// document's edge after the document has ended.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub documents: Vec<Document>,
    pub comments: Vec<Comment>,
}

/// A YAML syntax error with its 1-based position.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse every document of `text`, keeping byte spans.
pub(crate) fn parse_stream(text: &str) -> Result<Stream, SyntaxError> {
    let mut builder = Builder::default();
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|error| SyntaxError {
            line: error.marker().line(),
            column: error.marker().col() + 1,
            message: error.info(),
        })?;
        let range = span.byte_range().unwrap_or(0..0);
        builder.push(event, range);
    }
    Ok(builder.stream)
}

/// Turns the flat event stream into arenas. Anchor ids are per document in
/// `granit-parser`, so the anchor table is reset with each document.
#[derive(Default)]
struct Builder {
    stream: Stream,
    current: Option<Document>,
    /// Open collections, innermost last, with the key waiting for its value
    /// when the collection is a mapping.
    open: Vec<(NodeId, Option<NodeId>)>,
    anchors: HashMap<usize, NodeId>,
}

impl Builder {
    fn push(&mut self, event: Event<'_>, span: Range<usize>) {
        match event {
            Event::DocumentStart(..) => {
                self.current = Some(Document::default());
                self.open.clear();
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                if let Some(doc) = self.current.take() {
                    self.stream.documents.push(doc);
                }
            }
            Event::Comment(text, _) => {
                self.stream.comments.push(Comment {
                    text: text.into_owned(),
                    span,
                });
            }
            Event::Scalar(value, style, anchor, _) => {
                let kind = NodeKind::Scalar {
                    value: value.into_owned(),
                    style,
                };
                self.add(kind, span, anchor, false);
            }
            Event::SequenceStart(_, anchor, _) => {
                self.add(NodeKind::Sequence(Vec::new()), span, anchor, true);
            }
            Event::MappingStart(_, anchor, _) => {
                self.add(NodeKind::Mapping(Vec::new()), span, anchor, true);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.open.pop();
            }
            Event::Alias(anchor) => {
                // The parser rejects unknown aliases, so the lookup only
                // fails on a parser bug; an alias to nothing is then a null.
                let kind = match self.anchors.get(&anchor) {
                    Some(&target) => NodeKind::Alias(target),
                    None => NodeKind::Scalar {
                        value: String::new(),
                        style: ScalarStyle::Plain,
                    },
                };
                self.add(kind, span, 0, false);
            }
            _ => {}
        }
    }

    fn add(&mut self, kind: NodeKind, span: Range<usize>, anchor: usize, opens: bool) {
        let Some(doc) = self.current.as_mut() else {
            return;
        };
        let id = doc.nodes.len();
        doc.nodes.push(Node {
            kind,
            span,
            parent: None,
        });
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        match self.open.last_mut() {
            None => doc.root = Some(id),
            Some((parent, pending_key)) => {
                let parent = *parent;
                let segment = match &mut doc.nodes[parent].kind {
                    NodeKind::Sequence(items) => {
                        items.push(id);
                        Some(Segment::Index(items.len() - 1))
                    }
                    NodeKind::Mapping(entries) => match pending_key.take() {
                        None => {
                            *pending_key = Some(id);
                            None
                        }
                        Some(key) => {
                            entries.push((key, id));
                            Some(Segment::Key(key_text(&doc.nodes, key)))
                        }
                    },
                    _ => None,
                };
                if let Some(segment) = segment {
                    doc.nodes[id].parent = Some((parent, segment));
                }
            }
        }
        if opens {
            self.open.push((id, None));
        }
    }
}

/// The text of a mapping key as it appears in a JSON pointer.
fn key_text(nodes: &[Node], key: NodeId) -> String {
    match &nodes[key].kind {
        NodeKind::Scalar { value, .. } => value.clone(),
        NodeKind::Alias(target) => key_text(nodes, *target),
        _ => String::new(),
    }
}

impl Document {
    /// Follow aliases to the node that holds the content.
    pub fn resolve(&self, mut id: NodeId) -> NodeId {
        // Aliases always point backwards, so this terminates; the bound is a
        // belt-and-braces guard against a malformed arena.
        for _ in 0..self.nodes.len() {
            match self.nodes[id].kind {
                NodeKind::Alias(target) => id = target,
                _ => break,
            }
        }
        id
    }

    /// The value under `key` in the mapping `map` (aliases resolved).
    pub fn get(&self, map: NodeId, key: &str) -> Option<NodeId> {
        let NodeKind::Mapping(entries) = &self.nodes[self.resolve(map)].kind else {
            return None;
        };
        entries
            .iter()
            .find(|(k, _)| self.scalar(*k) == Some(key))
            .map(|(_, v)| self.resolve(*v))
    }

    /// Follow a chain of mapping keys from `node`.
    pub fn path(&self, node: NodeId, keys: &[&str]) -> Option<NodeId> {
        keys.iter().try_fold(node, |at, key| self.get(at, key))
    }

    /// The value of a scalar node (aliases resolved).
    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether a node is a scalar holding text: not a collection, and not
    /// null (an empty value, `~` or `null` written plain).
    pub fn is_text(&self, id: NodeId) -> bool {
        let node = &self.nodes[self.resolve(id)];
        match &node.kind {
            NodeKind::Scalar { value, style } => {
                let null = node.span.is_empty()
                    || (*style == ScalarStyle::Plain
                        && matches!(value.as_str(), "~" | "null" | "Null" | "NULL"));
                !null
            }
            _ => false,
        }
    }

    /// Items of a sequence node (aliases resolved), or nothing.
    pub fn items(&self, id: NodeId) -> Vec<NodeId> {
        match &self.nodes[self.resolve(id)].kind {
            NodeKind::Sequence(items) => items.iter().map(|i| self.resolve(*i)).collect(),
            _ => Vec::new(),
        }
    }

    /// JSON pointer (RFC 6901) of a node's definition inside its document.
    pub fn pointer(&self, id: NodeId) -> String {
        let mut segments = Vec::new();
        let mut at = id;
        while let Some((parent, segment)) = &self.nodes[at].parent {
            segments.push(segment);
            at = *parent;
        }
        let mut pointer = String::new();
        for segment in segments.iter().rev() {
            pointer.push('/');
            match segment {
                Segment::Index(i) => pointer.push_str(&i.to_string()),
                Segment::Key(k) => pointer.push_str(&k.replace('~', "~0").replace('/', "~1")),
            }
        }
        pointer
    }

    /// Whether `serde-saphyr` skips this document when reading a stream
    /// (empty or null documents), which shifts later document indexes.
    pub fn is_null(&self) -> bool {
        match self.root.map(|r| &self.nodes[r].kind) {
            None => true,
            Some(NodeKind::Scalar { value, style }) => {
                *style == ScalarStyle::Plain
                    && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL")
            }
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_byte_spans_and_pointers() {
        let text = "# é comment\na:\n  - b: \"x:1\"\n---\nc: 1\n";
        let stream = parse_stream(text).unwrap();
        let docs = &stream.documents;
        assert_eq!(docs.len(), 2);
        let doc = &docs[0];
        let root = doc.root.unwrap();
        let seq = doc.get(root, "a").unwrap();
        let item = doc.items(seq)[0];
        let b = doc.get(item, "b").unwrap();
        assert_eq!(&text[doc.nodes[b].span.clone()], "\"x:1\"");
        assert_eq!(doc.scalar(b), Some("x:1"));
        assert_eq!(doc.pointer(b), "/a/0/b");
        assert_eq!(stream.comments[0].text, " é comment");
        assert_eq!(&text[stream.comments[0].span.clone()], "# é comment");
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let text = "x: &img nginx:1\ny: *img\n";
        let docs = parse_stream(text).unwrap().documents;
        let doc = &docs[0];
        let y = doc.get(doc.root.unwrap(), "y").unwrap();
        assert_eq!(doc.pointer(y), "/x");
        assert_eq!(doc.scalar(y), Some("nginx:1"));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let error = parse_stream("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(error.line >= 1, "{error:?}");
        assert!(!error.message.is_empty());
    }

    #[test]
    fn null_documents_are_detected() {
        let docs = parse_stream("---\n# nothing\n---\na: 1\n---\n~\n")
            .unwrap()
            .documents;
        let nulls: Vec<bool> = docs.iter().map(Document::is_null).collect();
        assert_eq!(nulls, vec![true, false, true]);
    }
}
