//! Files → objects: multi-document YAML and JSON under an application's path,
//! recursive, with include/exclude globs; `kustomization.yaml` rendered natively
//! for the common transforms, or by an installed `kustomize`/`kubectl kustomize`.
//!
//! Not built yet: the signature below is the contract the rest of relbot uses.

use std::path::Path;

use crate::config::Application;
use crate::manifest::Manifest;

/// A file that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// Renders one application's directory (relative to `root`) into manifests,
/// each remembering its file and line.
pub fn render_application(root: &Path, app: &Application) -> Result<Vec<Manifest>, RenderError> {
    let _ = (root, app);
    Err(RenderError("rendering is not built yet".into()))
}
