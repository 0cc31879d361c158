//! What webhooks need to know of the configuration: the repository and
//! branch, each application's path, and the image each policy watches.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::{Config, LoadedPolicy};
use crate::image::ImageRef;
use crate::server::trigger::Selector;

/// What webhooks need to know of the configuration, rebuilt on reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// `owner/name` of the cluster-config repository, lowercase.
    pub repository: Option<String>,
    pub branch: String,
    /// Paths (relative to the repository root) whose change re-syncs everything:
    /// `relbot.yaml` and the policies directory.
    pub config_paths: Vec<PathBuf>,
    /// Application name and path, relative to the repository root.
    pub apps: Vec<(String, PathBuf)>,
    /// Policy name and the image it watches (policies whose image is not a
    /// valid reference cannot be bumped, so no webhook routes to them).
    pub policies: Vec<(String, ImageRef)>,
}

impl Routes {
    /// `config_file` is relbot.yaml's path relative to the repository root.
    pub fn from_config(config: &Config, policies: &[LoadedPolicy], config_file: &Path) -> Self {
        let base = config_file.parent().unwrap_or(Path::new(""));
        let repository = config
            .github
            .as_ref()
            .map(|g| g.repository.clone())
            .or_else(|| {
                config
                    .repo
                    .as_ref()
                    .and_then(|r| repository_from_url(&r.url))
            })
            .map(|r| r.to_ascii_lowercase());
        let mut config_paths = vec![config_file.to_path_buf()];
        if let Some(dir) = &config.policies {
            config_paths.push(normalize(&base.join(dir)));
        }
        Routes {
            repository,
            branch: config
                .repo
                .as_ref()
                .map(|r| r.branch.clone())
                .unwrap_or_else(|| "main".into()),
            config_paths,
            apps: config
                .applications
                .iter()
                .map(|a| (a.name.clone(), normalize(&base.join(&a.path))))
                .collect(),
            policies: policies
                .iter()
                .filter_map(|p| {
                    let image = ImageRef::parse(&p.policy.spec.image).ok()?;
                    Some((p.policy.metadata.name.clone(), image))
                })
                .collect(),
        }
    }

    pub(super) fn is_our_repository(&self, full_name: Option<&str>) -> bool {
        match (&self.repository, full_name) {
            (Some(ours), Some(theirs)) => ours.eq_ignore_ascii_case(theirs),
            // Without a configured repository we cannot tell; accept.
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// Applications whose directory contains one of `paths`; all of them
    /// when the configuration itself changed.
    pub fn apps_for_paths<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Selector<String> {
        let mut hit = BTreeSet::new();
        for changed in paths {
            let changed = Path::new(changed);
            if self.config_paths.iter().any(|c| changed.starts_with(c)) {
                return Selector::All;
            }
            for (name, path) in &self.apps {
                if changed.starts_with(path) {
                    hit.insert(name.clone());
                }
            }
        }
        Selector::Only(hit)
    }

    /// Policies watching `image` (any tag or digest).
    pub fn policies_for_image(&self, image: &ImageRef) -> BTreeSet<String> {
        self.policies
            .iter()
            .filter(|(_, i)| i.same_repository(image))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Policies watching the image written `text`, and the image's name
    /// for notes. Text that is not an image reference matches nothing.
    pub(super) fn policies_for_text(&self, text: &str) -> (BTreeSet<String>, String) {
        match ImageRef::parse(text) {
            Ok(image) => (self.policies_for_image(&image), image.name()),
            Err(_) => (BTreeSet::new(), format!("{text:?} (not an image)")),
        }
    }

    /// Policies watching `<any host>/path` (when a notification names no host).
    pub(super) fn policies_for_path(&self, path: &str) -> BTreeSet<String> {
        self.policies
            .iter()
            .filter(|(_, i)| i.repository == path)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Drops `.` components so `./manifests/x` and `manifests/x` compare equal.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `https://github.com/acme/x.git`, `git@github.com:acme/x.git` → `acme/x`.
pub fn repository_from_url(url: &str) -> Option<String> {
    let rest = url.trim_end_matches('/').trim_end_matches(".git");
    let rest = rest.split_once("://").map(|(_, r)| r).unwrap_or(rest);
    let rest = rest
        .split_once(':')
        .filter(|(host, _)| !host.contains('/'))
        .map(|(_, r)| r)
        .unwrap_or(rest);
    let parts: Vec<&str> = rest.rsplitn(3, '/').collect();
    match parts.as_slice() {
        [name, owner, _host] if !name.is_empty() && !owner.is_empty() => {
            Some(format!("{owner}/{name}"))
        }
        [name, owner] if !name.is_empty() && !owner.is_empty() => Some(format!("{owner}/{name}")),
        _ => None,
    }
}

/// Routes shared by the routing tests of this folder.
#[cfg(test)]
pub(super) mod fixture {
    use super::*;

    pub(in crate::server::webhook) fn routes() -> Routes {
        Routes {
            repository: Some("acme/cluster-config".into()),
            branch: "main".into(),
            config_paths: vec!["relbot.yaml".into(), "policies".into()],
            apps: vec![
                ("ahuora".into(), "manifests/ahuora".into()),
                ("platform".into(), "manifests/platform".into()),
            ],
            policies: [
                ("django-api", "docker.io/ahuora/django-api"),
                ("postgres", "postgres"),
                ("web", "ghcr.io/acme/web"),
                ("local", "localhost:5000/team/svc"),
            ]
            .into_iter()
            .map(|(name, image)| (name.to_string(), ImageRef::parse(image).unwrap()))
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repository_names_from_urls() {
        assert_eq!(
            repository_from_url("https://github.com/acme/x.git").as_deref(),
            Some("acme/x")
        );
        assert_eq!(
            repository_from_url("git@github.com:acme/x.git").as_deref(),
            Some("acme/x")
        );
        assert_eq!(
            repository_from_url("https://github.com/acme/x/").as_deref(),
            Some("acme/x")
        );
    }

    #[test]
    fn routes_from_config_resolve_paths() {
        let config: Config = serde_json::from_value(json!({
            "repo": {"url": "https://github.com/Acme/cluster-config.git", "branch": "prod"},
            "applications": [{"name": "a", "path": "./manifests/a"}],
            "policies": "policies/"
        }))
        .unwrap();
        let routes = Routes::from_config(&config, &[], Path::new("relbot.yaml"));
        assert_eq!(routes.repository.as_deref(), Some("acme/cluster-config"));
        assert_eq!(routes.branch, "prod");
        assert_eq!(
            routes.apps,
            vec![("a".to_string(), PathBuf::from("manifests/a"))]
        );
        assert_eq!(routes.apps_for_paths(["policies/x.yaml"]), Selector::All);
    }
}
