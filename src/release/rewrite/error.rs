//! The one error type of the rewrite module. Every message names the file
//! (and line where there is one) and says what to do about it.

use std::ops::Range;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("{}:{line}:{column}: not valid YAML, so no image references were read: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}:{line}: cannot rewrite `{image}` safely: {reason}", file.display())]
    Unsupported {
        file: PathBuf,
        line: usize,
        image: String,
        reason: String,
    },

    #[error(
        "{}:{line}: kustomize image `{name}` has no `newTag`; relbot does not insert lines. \
         Add `newTag: <current tag>` to that entry so it can be bumped",
        file.display()
    )]
    MissingNewTag {
        file: PathBuf,
        line: usize,
        name: String,
    },

    #[error(
        "{}:{line}: `{image}` is pinned by digest, but no digest was given for tag `{tag}`; \
         relbot will not drop a digest pin. Resolve the new tag's digest first, or remove the \
         digest from the file",
        file.display()
    )]
    DigestRequired {
        file: PathBuf,
        line: usize,
        image: String,
        tag: String,
    },

    #[error("invalid image tag {tag:?}: a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    InvalidTag { tag: String },

    #[error(
        "invalid image digest {digest:?}: expected `algorithm:hex`, e.g. sha256:<64 hex digits>"
    )]
    InvalidDigest { digest: String },

    #[error(
        "edit {span:?} overlaps another edit or does not fall on character boundaries of a \
         {len}-byte text; this is a bug in relbot's rewrite planning"
    )]
    BadEdit { span: Range<usize>, len: usize },

    #[error("{}: refusing to write the rewritten file: {reason}", file.display())]
    Verification { file: PathBuf, reason: String },

    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid `files` glob {pattern:?} in the image policy: {source}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
}
