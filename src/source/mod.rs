//! Where desired state comes from: a git repository (or a plain directory)
//! and the rendering of its files into Kubernetes objects.
//!
//! [`load_desired`] is the one entry point for the reconciler and the CLI:
//! render every application, validate every object, and either hand back
//! sorted, namespaced manifests or every problem at once.

pub mod git;
pub mod kinds;
pub mod kustomize;
pub mod order;
pub mod problem;
pub mod read;
pub mod render;
pub mod validate;
pub mod yaml;

use std::fmt;
use std::path::Path;

use crate::config::{Application, Config};
use crate::manifest::Manifest;

pub use kustomize::KustomizeTool;
pub use order::{Stage, SyncOrder, sort_manifests, sync_order};
pub use problem::{ProblemCode, Severity, ValidationProblem};
pub use render::{RenderError, RenderOptions, render_application};

/// One application's desired state, rendered and validated: what the CLI
/// and the server hand the sync engine to plan and apply.
#[derive(Debug, Clone)]
pub struct DesiredApplication {
    /// The application as configured. Its `namespace` is already applied to
    /// namespaced built-in and CRD-known kinds; for kinds that need
    /// discovery, the engine applies it once discovery says they are
    /// namespaced.
    pub app: Application,
    /// Validated, namespaced, in apply order ([`order::sort_manifests`]).
    pub manifests: Vec<Manifest>,
    /// Warnings and notes (kinds that need discovery, skipped files).
    pub notes: Vec<ValidationProblem>,
}

impl DesiredApplication {
    pub fn name(&self) -> &str {
        &self.app.name
    }

    /// Objects whose scope only API discovery can tell.
    pub fn needs_discovery(&self) -> impl Iterator<Item = &ValidationProblem> {
        self.notes
            .iter()
            .filter(|n| n.code == ProblemCode::NeedsDiscovery)
    }
}

/// Everything wrong with the desired state: errors and the notes found
/// along the way, sorted by file and line. Holds at least one error.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SourceError {
    pub problems: Vec<ValidationProblem>,
}

impl SourceError {
    pub fn errors(&self) -> impl Iterator<Item = &ValidationProblem> {
        self.problems.iter().filter(|p| p.is_error())
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors().count();
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        write!(
            f,
            "{errors} error{} in the desired state; nothing was applied",
            if errors == 1 { "" } else { "s" }
        )
    }
}

/// Renders and validates every application of `config` under `root` (the
/// repository checkout: the directory holding `relbot.yaml`).
pub fn load_desired(root: &Path, config: &Config) -> Result<Vec<DesiredApplication>, SourceError> {
    load_desired_with(root, config, &RenderOptions::default())
}

/// [`load_desired`] with explicit render options (tests, `--kustomize`).
pub fn load_desired_with(
    root: &Path,
    config: &Config,
    options: &RenderOptions,
) -> Result<Vec<DesiredApplication>, SourceError> {
    let mut rendered = Vec::new();
    for app in &config.applications {
        let mut rendering = render::render(root, app, options);
        for problem in &mut rendering.problems {
            problem.application = Some(app.name.clone());
        }
        rendered.push((app, rendering));
    }

    // CRDs in any application tell the scope of their kinds in all of them.
    let mut custom = validate::CustomScopes::default();
    for (_, rendering) in &rendered {
        custom.learn(rendering.objects.iter().map(|o| &o.manifest));
    }

    let mut lines = validate::LineResolver::new(root);
    let mut problems = Vec::new();
    for (app, rendering) in &mut rendered {
        let mut found = validate::validate_application(
            &mut rendering.objects,
            app.namespace.as_deref(),
            &custom,
            &mut lines,
        );
        for problem in &mut found {
            problem.application = Some(app.name.clone());
        }
        rendering.problems.extend(found);
    }
    let mut duplicates = validate::find_duplicates(
        rendered
            .iter()
            .flat_map(|(app, r)| r.objects.iter().map(|o| (app.name.as_str(), &o.manifest))),
    );
    for problem in &mut duplicates {
        problem.application = rendered
            .iter()
            .find(|(_, r)| {
                r.objects
                    .iter()
                    .any(|o| o.manifest.origin == problem.origin)
            })
            .map(|(app, _)| app.name.clone());
    }
    problems.extend(duplicates);

    let failed = problems.iter().any(ValidationProblem::is_error)
        || rendered
            .iter()
            .any(|(_, r)| r.problems.iter().any(ValidationProblem::is_error));
    if failed {
        problems.extend(rendered.into_iter().flat_map(|(_, r)| r.problems));
        problem::sort_problems(&mut problems);
        return Err(SourceError { problems });
    }
    Ok(rendered
        .into_iter()
        .map(|(app, rendering)| {
            let mut manifests: Vec<Manifest> =
                rendering.objects.into_iter().map(|o| o.manifest).collect();
            sort_manifests(&mut manifests);
            let mut notes = rendering.problems;
            problem::sort_problems(&mut notes);
            DesiredApplication {
                app: app.clone(),
                manifests,
                notes,
            }
        })
        .collect())
}
