//! The one error type of the bumper. Messages say what failed and where; the
//! underlying errors already carry file:line or URL (with secrets redacted).

use crate::release::github::GitHubError;
use crate::release::policy::PolicyError;
use crate::release::registry::{ReferenceError, RegistryError};
use crate::release::rewrite::RewriteError;
use crate::source::git::GitError;

#[derive(Debug, thiserror::Error)]
pub enum BumpError {
    #[error("ImagePolicy {policy}: spec.image {image:?} is not an image reference: {source}")]
    Image {
        policy: String,
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error("ImagePolicy {policy}: {source}")]
    Policy {
        policy: String,
        #[source]
        source: PolicyError,
    },
    #[error("ImagePolicy {policy}: {source}")]
    Registry {
        policy: String,
        /// Boxed: registry errors are large and rare.
        #[source]
        source: Box<RegistryError>,
    },
    #[error("ImagePolicy {policy}: {source}")]
    Rewrite {
        policy: String,
        #[source]
        source: RewriteError,
    },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{action}: {detail}")]
    Workspace { action: String, detail: String },
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error("{0}")]
    Settings(String),
}
