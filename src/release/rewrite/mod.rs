//! Comment-preserving image bumps in YAML files.
//!
//! relbot edits files people maintain by hand, so a bump must look like a
//! person changed one tag: [`find_references`] locates image references with
//! their byte spans (workload containers, kustomize `images:`, marker
//! comments), [`apply_edits`] replaces only those spans, and [`verify`]
//! re-reads both texts and refuses unless exactly the intended values
//! changed. Quotes, comments, blank lines, anchors, key order, indentation,
//! CRLF line endings and BOMs outside the spans are kept byte for byte.
//!
//! What counts as a reference:
//! - `image:` of `containers`, `initContainers` and `ephemeralContainers`
//!   in Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
//!   ReplicationController and PodTemplate objects (also inside `kind: List`);
//! - `images:` entries of a kustomization (`kustomization.yaml` by name, or
//!   `kind: Kustomization` of `kustomize.config.k8s.io`): `newName` or
//!   `name` is the repository, `newTag` and `digest` are edited;
//! - any scalar with a marker comment on its line:
//!   `# relbot: policy=NAME` (scalar is `repository:tag`),
//!   `# relbot: policy=NAME:tag` (scalar is the tag), and Flux's
//!   `# {"$imagepolicy": "ns:NAME"}` / `"ns:NAME:tag"` (namespace ignored).
//!
//! Decisions:
//! - An image written without a tag (`nginx`) gets `:<tag>` appended, as
//!   Renovate does; one pinned by digest gets tag and digest replaced and
//!   the bump is refused when no new digest is given (a pin is never
//!   dropped). A digest is never added where none was written.
//! - A kustomize entry without `newTag` is refused with a message asking
//!   for one; relbot does not insert lines.
//! - A plain tag-only scalar whose new value would read as a number
//!   (`newTag: 1.10`) is written double-quoted so it stays a string.
//! - A marker comment names the policy explicitly and wins over matching by
//!   repository: a line marked for policy `a` is never edited for `b`.
//! - Scalars with escapes, line folding or block style are found but never
//!   edited; a bump that needs one is refused with the file and line.

mod edit;
mod error;
mod files;
mod find;
mod marker;
mod scalar;
mod tree;
mod verify;

use std::path::{Path, PathBuf};

pub use edit::{Edit, ExpectedChange, apply_edits};
pub use error::RewriteError;
pub use files::{files_for_policy, files_mentioning};
pub use find::{ContainerField, ImageReference, ReferenceKind, find_references};
pub use verify::verify;

use crate::image::same_repository;
use find::LineIndex;

/// The policy a bump is for: its name (for marker comments) and image
/// repository (for everything else).
#[derive(Debug, Clone, Copy)]
pub struct PolicyTarget<'a> {
    pub name: &'a str,
    /// Repository without tag: `docker.io/ahuora/django-api`, `postgres`.
    pub image: &'a str,
}

/// The new content of one file and the lines that changed (for commit
/// messages and PR bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: PathBuf,
    pub new_text: String,
    pub changes: Vec<LineChange>,
}

/// One changed line, 1-based, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    pub line: usize,
    pub old: String,
    pub new: String,
}

/// Whether `reference` belongs to `policy`: by marker name when it has a
/// marker, else by repository (`postgres` == `docker.io/library/postgres`).
pub fn matches_policy(reference: &ImageReference, policy: &PolicyTarget) -> bool {
    match &reference.kind {
        ReferenceKind::Marker { policy: name, .. } => name == policy.name,
        _ => same_repository(&reference.image, policy.image),
    }
}

/// Set every reference to `policy` in one file to `new_tag` (and
/// `new_digest` where a digest is pinned). `Ok(None)` when the file has no
/// such reference or all are current. Refuses the whole file when any
/// matching reference cannot be edited safely or verification fails.
pub fn bump_file(
    path: &Path,
    text: &str,
    policy: &PolicyTarget,
    new_tag: &str,
    new_digest: Option<&str>,
) -> Result<Option<FileChange>, RewriteError> {
    let references = find_references(path, text)?;
    let mut edits = Vec::new();
    let mut expected = Vec::new();
    for reference in references.iter().filter(|r| matches_policy(r, policy)) {
        for (edit, change) in reference.plan(new_tag, new_digest)? {
            // The same scalar reached twice is one edit, not an overlap.
            if !edits.contains(&edit) {
                edits.push(edit);
                expected.push(change);
            }
        }
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let new_text = apply_edits(text, &edits)?;
    verify(path, text, &new_text, &expected)?;
    confirm_references(path, &new_text, policy, new_tag, new_digest)?;

    let (old_lines, new_lines) = (LineIndex::new(text), LineIndex::new(&new_text));
    let mut lines: Vec<usize> = edits
        .iter()
        .map(|e| old_lines.line_of(e.span.start))
        .collect();
    lines.sort_unstable();
    lines.dedup();
    let changes = lines
        .into_iter()
        .map(|line| LineChange {
            line,
            old: line_text(text, &old_lines, line),
            new: line_text(&new_text, &new_lines, line),
        })
        .collect();
    Ok(Some(FileChange {
        path: path.to_path_buf(),
        new_text,
        changes,
    }))
}

/// What a policy's bump does to a repository checkout.
#[derive(Debug, Default)]
pub struct RepositoryBump {
    pub changes: Vec<FileChange>,
    /// Files matching the globs that could not be read as YAML (Helm
    /// templates, say). They hold no reference relbot could see, so they
    /// are reported rather than fatal.
    pub skipped: Vec<RewriteError>,
}

/// Run [`bump_file`] over every file of `root` matching `globs`. Paths in
/// the result are relative to `root`. A file that mentions neither the
/// image's name nor a marker is not parsed at all.
pub fn bump_repository(
    root: &Path,
    globs: &[String],
    policy: &PolicyTarget,
    new_tag: &str,
    new_digest: Option<&str>,
) -> Result<RepositoryBump, RewriteError> {
    let mut bump = RepositoryBump::default();
    for (relative, text) in files_mentioning(root, globs, policy)? {
        match bump_file(&relative, &text, policy, new_tag, new_digest) {
            Ok(Some(change)) => bump.changes.push(change),
            Ok(None) => {}
            Err(error @ RewriteError::Syntax { .. }) => bump.skipped.push(error),
            Err(error) => return Err(error),
        }
    }
    Ok(bump)
}

/// Read the rewritten file back with the finder: every reference to the
/// policy must now carry the new version.
fn confirm_references(
    path: &Path,
    new_text: &str,
    policy: &PolicyTarget,
    new_tag: &str,
    new_digest: Option<&str>,
) -> Result<(), RewriteError> {
    for reference in find_references(path, new_text)?
        .iter()
        .filter(|r| matches_policy(r, policy))
    {
        let tag_ok = reference.tag.as_deref() == Some(new_tag)
            || (reference.tag.is_none()
                && matches!(reference.kind, ReferenceKind::KustomizeImage { .. }));
        let digest_ok = reference.digest.is_none() || reference.digest.as_deref() == new_digest;
        if !tag_ok || !digest_ok {
            return Err(RewriteError::Verification {
                file: path.to_path_buf(),
                reason: format!(
                    "line {}: `{}` still reads {} after the rewrite",
                    reference.line,
                    reference.image,
                    describe_version(reference.tag.as_deref(), reference.digest.as_deref())
                ),
            });
        }
    }
    Ok(())
}

fn line_text(text: &str, lines: &LineIndex, line: usize) -> String {
    let rest = &text[lines.start_of(line)..];
    let end = rest.find('\n').unwrap_or(rest.len());
    rest[..end].trim_end_matches('\r').to_string()
}

/// `tag 1.2.3`, `digest sha256:…`, `tag 1.2.3 and digest sha256:…`, or `no
/// tag` — for messages, without Rust's `Some("…")`.
fn describe_version(tag: Option<&str>, digest: Option<&str>) -> String {
    match (tag, digest) {
        (Some(tag), Some(digest)) => format!("tag {tag} and digest {digest}"),
        (Some(tag), None) => format!("tag {tag}"),
        (None, Some(digest)) => format!("digest {digest}"),
        (None, None) => "no tag".into(),
    }
}
