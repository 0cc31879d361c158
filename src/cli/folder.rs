//! Where `validate`, `sync` and `diff` read desired state from: a
//! cluster-config checkout (its `relbot.yaml`), or a plain folder of
//! manifests with no `relbot.yaml`, read as one application the way
//! `kubectl apply -f DIR -R`, `flux diff kustomization --path` and
//! `argocd app diff --local` take a folder.

use std::path::{Path, PathBuf};

use clap::Args;
use relbot::config::LoadedConfig;

use super::progress::around_output;
use super::{GlobalArgs, Outcome, SourceArgs};

/// Defaults for a plain folder of manifests (one without relbot.yaml).
#[derive(Debug, Clone, Default, Args)]
pub struct FolderArgs {
    /// For a folder without relbot.yaml: namespace for objects that name none [default: default]
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// For a folder without relbot.yaml: the application's name [default: the folder's name]
    #[arg(long, value_name = "NAME")]
    pub app_name: Option<String>,
}

/// The namespace a folder's objects get when they name none, as `kubectl
/// apply` with a context that sets none.
const DEFAULT_NAMESPACE: &str = "default";

/// Loaded desired-state settings and where their paths start.
pub struct Source {
    pub config: LoadedConfig,
    /// The directory application paths are relative to.
    pub root: PathBuf,
    /// Set when `root` is a plain folder read as one application.
    pub plain_folder: bool,
}

impl Source {
    /// How messages name the settings: the relbot.yaml, or the folder.
    pub fn described(&self) -> String {
        if self.plain_folder {
            format!("the folder {}", self.root.display())
        } else {
            self.config.path.display().to_string()
        }
    }
}

/// Loads `relbot.yaml` (`--config`, `<--source>/relbot.yaml`, `./relbot.yaml`);
/// when there is none and the folder holds manifests, reads the folder as
/// one application and says so in one line on stderr. On failure the
/// problems and `consequence` are printed.
pub fn load(
    global: &GlobalArgs,
    source: &SourceArgs,
    folder: &FolderArgs,
    consequence: &str,
) -> Result<Source, Outcome> {
    let config_path = source.config_path(global);
    let dir = source.source.clone().unwrap_or_else(|| PathBuf::from("."));
    let is_folder = global.config.is_none()
        && !config_path.exists()
        && match &source.source {
            // Named on the command line: any directory is meant as one.
            Some(_) => dir.is_dir(),
            // Where the user stands: only when it visibly holds manifests, so
            // running in the wrong directory still says relbot.yaml is missing.
            None => holds_manifests(&dir),
        };
    if !is_folder {
        if folder.namespace.is_some() || folder.app_name.is_some() {
            return Err(fail(format!(
                "--namespace and --app-name are for a folder without relbot.yaml; {} sets each application's name and namespace",
                config_path.display()
            )));
        }
        let config = super::load_config(global, source, consequence)?;
        let root = source
            .source
            .clone()
            .unwrap_or_else(|| config.base_dir().to_path_buf());
        return Ok(Source {
            config,
            root,
            plain_folder: false,
        });
    }

    let name = match &folder.app_name {
        Some(name) => name.clone(),
        None => name_of(&dir),
    };
    let namespace = folder
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let config = relbot::config::for_folder(&dir, &name, &namespace).map_err(|e| {
        around_output(|| {
            eprintln!("{e}");
            eprintln!("{consequence}");
        });
        Outcome::Failed
    })?;
    let layout = if relbot::source::kustomize::find_kustomization(&dir).is_some() {
        "its kustomization"
    } else {
        "plain YAML, recursively"
    };
    around_output(|| {
        eprintln!(
            "No relbot.yaml in {}: reading it as one application {name:?} ({layout}; namespace {namespace:?} for objects without one; --app-name/--namespace change these).",
            dir.display()
        )
    });
    Ok(Source {
        config,
        root: dir,
        plain_folder: true,
    })
}

fn fail(message: String) -> Outcome {
    around_output(|| eprintln!("error: {message}"));
    Outcome::Failed
}

/// A kustomization or a YAML/JSON file directly in `dir`.
fn holds_manifests(dir: &Path) -> bool {
    if relbot::source::kustomize::find_kustomization(dir).is_some() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let path = entry.path();
        path.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
    })
}

/// The folder's own name as an application name (a DNS-1123 label):
/// lowercase, anything else turned into '-', at most 63 characters.
fn name_of(dir: &Path) -> String {
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let raw = absolute
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut label: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    label.truncate(63);
    let label = label.trim_matches('-').to_string();
    if label.is_empty() {
        "local".to_string()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_name_becomes_a_dns_label() {
        assert_eq!(
            name_of(Path::new("/tmp/My_Manifests.v2")),
            "my-manifests-v2"
        );
        assert_eq!(name_of(Path::new("/")), "local");
    }
}
