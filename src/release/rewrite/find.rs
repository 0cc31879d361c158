//! Finding image references in a YAML file: container images of workload
//! kinds, kustomize `images:` entries, and scalars tagged by a marker
//! comment. Each reference carries the byte ranges a bump must replace.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_saphyr::granit_parser::ScalarStyle;

use super::RewriteError;
use super::marker::{Marker, parse_marker};
use super::tree::{Document, NodeId, NodeKind, Stream, parse_stream};
use crate::image::split_reference;

/// One place in a file where an image version is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub file: PathBuf,
    /// 1-based line of the scalar that holds the tag.
    pub line: usize,
    /// 1-based column, in characters, of that scalar.
    pub column: usize,
    /// 0-based index of the YAML document in the file, counting empty ones.
    pub doc_index: usize,
    pub kind: ReferenceKind,
    /// Repository as written (kustomize: `newName` if set, else `name`).
    /// Empty for a `:tag` marker, whose scalar holds only the tag.
    pub image: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// Bytes a bump replaces: `:tag@digest` after the repository (empty
    /// at the repository's end when neither is written), the whole tag for
    /// a `:tag` marker, the `newTag` value for kustomize.
    pub span: Range<usize>,
    pub(crate) target: Target,
}

/// Why relbot thinks a scalar is an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceKind {
    /// `image:` of a container in a workload's pod spec.
    Container {
        /// `Deployment`, `CronJob`, `Pod`, ...
        kind: String,
        namespace: Option<String>,
        /// The object's `metadata.name`.
        name: String,
        field: ContainerField,
        /// The container's `name`.
        container: String,
    },
    /// An entry of a kustomization's `images:`.
    KustomizeImage { name: String },
    /// A scalar with a `# relbot: policy=NAME` (or Flux `$imagepolicy`)
    /// comment on its line.
    Marker { policy: String, tag_only: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerField {
    Containers,
    InitContainers,
    EphemeralContainers,
}

impl ContainerField {
    const ALL: [(ContainerField, &'static str); 3] = [
        (ContainerField::Containers, "containers"),
        (ContainerField::InitContainers, "initContainers"),
        (ContainerField::EphemeralContainers, "ephemeralContainers"),
    ];
}

/// A scalar the rewrite may touch, located in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// The whole scalar, quotes included.
    pub span: Range<usize>,
    /// The scalar's text without quotes.
    pub content: Range<usize>,
    pub plain: bool,
    /// JSON pointer of the scalar inside its document (for verification).
    pub pointer: String,
    /// The scalar's value, equal to `text[content]`.
    pub value: String,
    pub line: usize,
}

/// What a bump edits for a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `repository[:tag][@digest]` in one scalar; `suffix` covers
    /// `[:tag][@digest]`.
    Combined { site: Site, suffix: Range<usize> },
    /// The scalar is only the tag.
    TagOnly { site: Site },
    /// Kustomize entry: separate `newTag` and `digest` fields.
    Kustomize {
        tag: Option<Site>,
        digest: Option<Site>,
    },
    /// Found, but written in a way relbot does not edit (block scalar,
    /// escapes, line folding).
    Unsupported { reason: String },
}

/// Every image reference in `text`, in source order. `path` is only used to
/// label references and errors (and to recognise `kustomization.yaml`).
pub fn find_references(path: &Path, text: &str) -> Result<Vec<ImageReference>, RewriteError> {
    let stream = parse_stream(text).map_err(|error| RewriteError::Syntax {
        file: path.to_path_buf(),
        line: error.line,
        column: error.column,
        message: error.message,
    })?;
    let finder = Finder {
        path,
        text,
        lines: LineIndex::new(text),
    };
    let marked = finder.marked_scalars(&stream);
    let mut references = Vec::new();
    for (doc_index, doc) in stream.documents.iter().enumerate() {
        let markers: Vec<(NodeId, &Marker)> = marked
            .iter()
            .filter(|(index, _, _)| *index == doc_index)
            .map(|(_, node, marker)| (*node, marker))
            .collect();
        finder.document(doc_index, doc, &markers, &mut references);
    }
    references.sort_by_key(|r| (r.span.start, r.span.end));
    Ok(references)
}

struct Finder<'a> {
    path: &'a Path,
    text: &'a str,
    lines: LineIndex,
}

impl Finder<'_> {
    fn document(
        &self,
        doc_index: usize,
        doc: &Document,
        markers: &[(NodeId, &Marker)],
        out: &mut Vec<ImageReference>,
    ) {
        let Some(root) = doc.root else { return };
        // Markers first: an explicit marker names the policy and wins over
        // a structural match on the same scalar.
        let mut seen: HashSet<Range<usize>> = HashSet::new();
        for &(node, marker) in markers {
            if !seen.insert(doc.nodes[node].span.clone()) {
                // Two marked aliases of one anchor: one reference.
                continue;
            }
            let kind = ReferenceKind::Marker {
                policy: marker.policy.clone(),
                tag_only: marker.tag_only,
            };
            out.push(self.scalar_reference(doc_index, doc, node, kind, marker.tag_only));
        }
        // `kind: List` (as `kubectl get -o yaml` writes) holds objects.
        let kind_of = |node| doc.get(node, "kind").and_then(|k| doc.scalar(k));
        let objects = match (kind_of(root), doc.get(root, "items")) {
            (Some("List"), Some(items)) => doc.items(items),
            _ => vec![root],
        };
        for object in objects {
            self.containers(doc_index, doc, object, &mut seen, out);
        }
        let images = doc.get(root, "images");
        if let Some(images) = images.filter(|_| self.is_kustomization(doc, root)) {
            for entry in doc.items(images) {
                out.extend(self.kustomize_reference(doc_index, doc, entry, &seen));
            }
        }
    }

    /// Container images of one workload object.
    fn containers(
        &self,
        doc_index: usize,
        doc: &Document,
        object: NodeId,
        seen: &mut HashSet<Range<usize>>,
        out: &mut Vec<ImageReference>,
    ) {
        let object_kind = doc.get(object, "kind").and_then(|k| doc.scalar(k));
        let Some(pod_spec) = object_kind
            .and_then(pod_spec_path)
            .and_then(|p| doc.path(object, p))
        else {
            return;
        };
        let metadata = doc.get(object, "metadata");
        let meta = |key| {
            metadata
                .and_then(|m| doc.get(m, key))
                .and_then(|v| doc.scalar(v))
        };
        for (field, key) in ContainerField::ALL {
            let Some(list) = doc.get(pod_spec, key) else {
                continue;
            };
            for container in doc.items(list) {
                let Some(image) = doc.get(container, "image") else {
                    continue;
                };
                if !doc.is_text(image) || !seen.insert(doc.nodes[image].span.clone()) {
                    // Not text (null, a collection), or an alias of an
                    // image already found.
                    continue;
                }
                let kind = ReferenceKind::Container {
                    kind: object_kind.unwrap_or_default().to_string(),
                    namespace: meta("namespace").map(str::to_string),
                    name: meta("name").unwrap_or_default().to_string(),
                    field,
                    container: doc
                        .get(container, "name")
                        .and_then(|n| doc.scalar(n))
                        .unwrap_or_default()
                        .to_string(),
                };
                out.push(self.scalar_reference(doc_index, doc, image, kind, false));
            }
        }
    }

    /// Scalars with a marker comment on the line where they end, as
    /// (document index, node, marker).
    fn marked_scalars(&self, stream: &Stream) -> Vec<(usize, NodeId, Marker)> {
        let mut found = Vec::new();
        for comment in &stream.comments {
            let Some(marker) = parse_marker(&comment.text) else {
                continue;
            };
            let line = self.lines.line_of(comment.span.start);
            let scalar = stream
                .documents
                .iter()
                .enumerate()
                .flat_map(|(index, doc)| {
                    doc.nodes.iter().enumerate().filter_map(move |(id, node)| {
                        // A non-null value, not a mapping key. A marked
                        // alias stands for its anchor: that scalar is edited.
                        let value =
                            doc.is_text(id) && (node.parent.is_some() || doc.root == Some(id));
                        (value
                            && node.span.end <= comment.span.start
                            && self.lines.line_of(node.span.end) == line)
                            .then_some((index, doc.resolve(id), node.span.end))
                    })
                })
                .max_by_key(|(_, _, end)| *end);
            if let Some((index, id, _)) = scalar {
                found.push((index, id, marker));
            }
        }
        found
    }

    fn is_kustomization(&self, doc: &Document, root: NodeId) -> bool {
        let field = |key| doc.get(root, key).and_then(|v| doc.scalar(v));
        let named = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| {
                matches!(
                    name,
                    "kustomization.yaml" | "kustomization.yml" | "Kustomization"
                )
            });
        let kind = field("kind");
        let api = field("apiVersion").unwrap_or_default();
        (named && kind.is_none_or(|k| k == "Kustomization"))
            || (kind == Some("Kustomization") && api.starts_with("kustomize.config.k8s.io/"))
    }

    /// A reference whose tag lives in the scalar `node`.
    fn scalar_reference(
        &self,
        doc_index: usize,
        doc: &Document,
        node: NodeId,
        kind: ReferenceKind,
        tag_only: bool,
    ) -> ImageReference {
        let value = doc.scalar(node).unwrap_or_default();
        let start = doc.nodes[node].span.start;
        let (line, column) = self.lines.position(self.text, start);
        let site = self.site(doc, node);
        let (image, tag, digest) = if tag_only {
            (String::new(), Some(value.to_string()), None)
        } else {
            let split = split_reference(value);
            (
                split.name.to_string(),
                split.tag.map(str::to_string),
                split.digest.map(str::to_string),
            )
        };
        let (target, span) = match site {
            Err(reason) => (Target::Unsupported { reason }, doc.nodes[node].span.clone()),
            Ok(site) if tag_only => {
                let span = site.content.clone();
                (Target::TagOnly { site }, span)
            }
            Ok(site) => {
                let suffix =
                    site.content.start + split_reference(value).name.len()..site.content.end;
                (
                    Target::Combined {
                        site,
                        suffix: suffix.clone(),
                    },
                    suffix,
                )
            }
        };
        ImageReference {
            file: self.path.to_path_buf(),
            line,
            column,
            doc_index,
            kind,
            image,
            tag,
            digest,
            span,
            target,
        }
    }

    fn kustomize_reference(
        &self,
        doc_index: usize,
        doc: &Document,
        entry: NodeId,
        seen: &HashSet<Range<usize>>,
    ) -> Option<ImageReference> {
        let field = |key| doc.get(entry, key).filter(|v| doc.scalar(*v).is_some());
        let name = field("name")?;
        let tag = field("newTag");
        let digest = field("digest");
        // A marker on `newTag` (or `name`) already produced a reference.
        if [Some(name), tag, digest]
            .into_iter()
            .flatten()
            .any(|n| seen.contains(&doc.nodes[n].span))
        {
            return None;
        }
        let text = |n: Option<NodeId>| n.and_then(|n| doc.scalar(n)).map(str::to_string);
        let name_text = text(Some(name)).unwrap_or_default();
        let anchor = tag.unwrap_or(name);
        let (line, column) = self.lines.position(self.text, doc.nodes[anchor].span.start);
        let sites = (
            tag.map(|t| self.site(doc, t)),
            digest.map(|d| self.site(doc, d)),
        );
        let (target, span) = match sites {
            (Some(Err(reason)), _) | (_, Some(Err(reason))) => (
                Target::Unsupported { reason },
                doc.nodes[anchor].span.clone(),
            ),
            (tag, digest) => {
                let tag = tag.and_then(Result::ok);
                let span = tag.as_ref().map_or_else(
                    || doc.nodes[name].span.end..doc.nodes[name].span.end,
                    |t| t.content.clone(),
                );
                let digest = digest.and_then(Result::ok);
                (Target::Kustomize { tag, digest }, span)
            }
        };
        Some(ImageReference {
            file: self.path.to_path_buf(),
            line,
            column,
            doc_index,
            kind: ReferenceKind::KustomizeImage {
                name: name_text.clone(),
            },
            image: text(field("newName")).unwrap_or(name_text),
            tag: text(tag),
            digest: text(digest),
            span,
            target,
        })
    }

    /// Locate a scalar's text, or say why it cannot be edited in place.
    fn site(&self, doc: &Document, node: NodeId) -> Result<Site, String> {
        let NodeKind::Scalar { value, style } = &doc.nodes[node].kind else {
            return Err("the value is not a scalar".to_string());
        };
        let span = doc.nodes[node].span.clone();
        let quote = match style {
            ScalarStyle::Plain => None,
            ScalarStyle::SingleQuoted => Some(b'\''),
            ScalarStyle::DoubleQuoted => Some(b'"'),
            ScalarStyle::Literal | ScalarStyle::Folded => {
                return Err("it is a block scalar (`|` or `>`); write it on one line".to_string());
            }
        };
        let bytes = self.text.as_bytes();
        let content = match quote {
            None => span.clone(),
            Some(q) if span.len() >= 2 && bytes[span.start] == q && bytes[span.end - 1] == q => {
                span.start + 1..span.end - 1
            }
            Some(_) => return Err("its quotes could not be located".to_string()),
        };
        // Escapes, `''` and folded line breaks make the source differ from
        // the value; offsets inside the value would then be wrong.
        if self.text.get(content.clone()) != Some(value.as_str()) {
            return Err(
                "the scalar uses escapes or spans lines; write it on one line without escapes"
                    .to_string(),
            );
        }
        Ok(Site {
            span,
            content,
            plain: quote.is_none(),
            pointer: doc.pointer(node),
            value: value.clone(),
            line: self.lines.line_of(doc.nodes[node].span.start),
        })
    }
}

/// Where the pod spec sits in each workload kind.
fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => &["spec", "template", "spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "PodTemplate" => &["template", "spec"],
        _ => return None,
    })
}

/// Byte offset → 1-based line and column.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }

    /// Line start byte offset of a 1-based line.
    pub fn start_of(&self, line: usize) -> usize {
        self.starts[line - 1]
    }

    /// 1-based line and column (in characters, a leading BOM not counted).
    pub fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.line_of(offset);
        let before = &text[self.start_of(line)..offset];
        let before = before.strip_prefix('\u{feff}').unwrap_or(before);
        (line, before.chars().count() + 1)
    }
}
