//! Reading and validating `relbot.yaml` and the ImagePolicy files it points to.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{Config, ConfigError, ConfigProblem, ImagePolicy};
use crate::dns_name::is_dns_label;
use crate::image::split_reference;

/// A validated configuration with the policies it references.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub config: Config,
    pub policies: Vec<LoadedPolicy>,
}

#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub file: PathBuf,
    pub policy: ImagePolicy,
}

impl LoadedConfig {
    /// Directory that relative paths in the config are resolved against.
    pub fn base_dir(&self) -> &Path {
        config_dir(&self.path)
    }

    pub fn application(&self, name: &str) -> Option<&super::Application> {
        self.config.applications.iter().find(|a| a.name == name)
    }
}

/// The directory holding the configuration file. `Path::parent` of a bare
/// file name (`relbot.yaml`, the default) is the empty path, which every
/// file-system call refuses ("No such file or directory"); the directory a
/// bare name lives in is the current one.
pub fn config_dir(config_file: &Path) -> &Path {
    match config_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Loads `relbot.yaml` and every policy, reporting all problems at once.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let config: Config = parse_file(path)?;
    let mut problems = validate_config(path, &config);
    let policies = match &config.policies {
        Some(dir) => {
            let dir = config_dir(path).join(dir);
            match load_policies(&dir) {
                Ok(p) => p,
                Err(e) => {
                    problems.extend(e.problems);
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        config,
        policies,
    })
}

/// The configuration of a plain folder of manifests that has no
/// `relbot.yaml` (`relbot validate --source DIR`, like `kubectl apply -f DIR
/// -R`): one application `name` at the folder's root, `namespace` for
/// objects that name none, no policies. Checked by the same rules as a file.
pub fn for_folder(dir: &Path, name: &str, namespace: &str) -> Result<LoadedConfig, ConfigError> {
    let path = dir.join("relbot.yaml");
    let application = super::Application {
        name: name.to_string(),
        path: PathBuf::from("."),
        namespace: Some(namespace.to_string()),
        include: Vec::new(),
        exclude: Vec::new(),
        sync: super::SyncPolicy::default(),
        ignore: Vec::new(),
        destination: None,
    };
    let config = Config {
        repo: None,
        applications: vec![application],
        github: None,
        policies: None,
        registries: Vec::new(),
        apply: super::ApplySettings::default(),
        status: super::StatusSettings::default(),
        health: Vec::new(),
        notifications: super::NotificationSettings::default(),
        serve: super::ServeSettings::default(),
    };
    let problems: Vec<ConfigProblem> = validate_config(&path, &config)
        .into_iter()
        .map(|mut problem| {
            // Name the flag that set the value, not a file that does not exist.
            problem.file = dir.to_path_buf();
            problem.field = problem.field.map(|field| match field.rsplit('.').next() {
                Some("name") => "--app-name".to_string(),
                Some("namespace") => "--namespace".to_string(),
                _ => field,
            });
            problem
        })
        .collect();
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    Ok(LoadedConfig {
        path,
        config,
        policies: Vec::new(),
    })
}

/// Loads every `*.yaml`/`*.yml` in `dir` as an ImagePolicy.
pub fn load_policies(dir: &Path) -> Result<Vec<LoadedPolicy>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| file_problem(dir, format!("cannot read policies directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut policies = Vec::new();
    let mut names = HashSet::new();
    for file in files {
        match parse_file::<ImagePolicy>(&file) {
            Ok(policy) => {
                problems.extend(validate_policy(&file, &policy));
                if !names.insert(policy.metadata.name.clone()) {
                    problems.push(file_problem(
                        &file,
                        format!("duplicate ImagePolicy name {:?}", policy.metadata.name),
                    ));
                }
                policies.push(LoadedPolicy { file, policy });
            }
            Err(e) => problems.extend(e.problems),
        }
    }
    if problems.is_empty() {
        Ok(policies)
    } else {
        Err(ConfigError { problems })
    }
}

fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_problem(path, format!("cannot read: {e}")))?;
    parse_str(path, &text)
}

/// Parses YAML text; a serde error becomes a problem at its line and column.
pub(crate) fn parse_str<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let described = crate::yaml_message::describe(&e, text);
        ConfigError::from(ConfigProblem {
            file: path.to_path_buf(),
            line: described.line,
            column: described.column,
            field: None,
            message: described.message,
        })
    })
}

fn file_problem(path: &Path, message: String) -> ConfigProblem {
    ConfigProblem {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        field: None,
        message,
    }
}

/// Semantic checks serde cannot express. Problems found here have no column
/// (the values parsed fine), so they name the field instead.
fn validate_config(path: &Path, config: &Config) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    // Problems that know their line (kept apart from the closure's).
    let mut located = Vec::new();
    let mut field_problem = |field: String, message: String| {
        problems.push(ConfigProblem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: Some(field),
            message,
        });
    };
    if config.applications.is_empty() {
        field_problem(
            "applications".into(),
            "at least one application is required".into(),
        );
    }
    let mut names = HashSet::new();
    for (i, app) in config.applications.iter().enumerate() {
        if !is_dns_label(&app.name) {
            field_problem(
                format!("applications[{i}].name"),
                format!(
                    "{:?} is not a DNS-1123 label (lowercase letters, digits, '-'; at most 63)",
                    app.name
                ),
            );
        }
        if !names.insert(app.name.as_str()) {
            field_problem(
                format!("applications[{i}].name"),
                format!("duplicate application name {:?}", app.name),
            );
        }
        if app.path.is_absolute()
            || app
                .path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            field_problem(
                format!("applications[{i}].path"),
                format!(
                    "{} must be relative to the repository root and stay inside it",
                    app.path.display()
                ),
            );
        }
        if let Some(ns) = &app.namespace
            && !is_dns_label(ns)
        {
            field_problem(
                format!("applications[{i}].namespace"),
                format!("{ns:?} is not a valid namespace name"),
            );
        }
        if app.sync.max_prune_percent > 100 {
            field_problem(
                format!("applications[{i}].sync.maxPrunePercent"),
                "must be between 0 and 100".into(),
            );
        }
        for (g, glob) in app.include.iter().chain(&app.exclude).enumerate() {
            if let Err(e) = globset::Glob::new(glob) {
                field_problem(
                    format!("applications[{i}].include/exclude[{g}]"),
                    format!("bad glob {glob:?}: {e}"),
                );
            }
        }
        located.extend(destination_problems(path, i, app));
        for (r, rule) in app.ignore.iter().enumerate() {
            for pointer in &rule.json_pointers {
                if !pointer.starts_with('/') {
                    field_problem(
                        format!("applications[{i}].ignore[{r}].jsonPointers"),
                        format!("{pointer:?} is not a JSON pointer (it must start with '/')"),
                    );
                }
            }
        }
    }
    if let Some(github) = &config.github
        && github
            .repository
            .split('/')
            .filter(|s| !s.is_empty())
            .count()
            != 2
    {
        field_problem(
            "github.repository".into(),
            format!("{:?} must be owner/name", github.repository),
        );
    }
    if config.apply.concurrency == 0 {
        field_problem("apply.concurrency".into(), "must be at least 1".into());
    }
    if let Some(shards) = config.serve.shards
        && !(1..=super::types::MAX_SHARDS).contains(&shards)
    {
        field_problem(
            "serve.shards".into(),
            format!(
                "{shards} shards: must be between 1 and {} (leave it out to have one replica sync everything)",
                super::types::MAX_SHARDS
            ),
        );
    }
    problems.extend(located);
    problems
}

/// `applications[i].destination`, reported at its line in relbot.yaml and
/// naming the application: the Secret must be one Kubernetes can name.
fn destination_problems(path: &Path, i: usize, app: &super::Application) -> Vec<ConfigProblem> {
    let Some(spanned) = &app.destination else {
        return Vec::new();
    };
    let secret = &spanned.value.kube_config.secret_ref;
    let at = |field: &str, message: String| ConfigProblem {
        file: path.to_path_buf(),
        line: spanned.referenced.line() as usize,
        column: spanned.referenced.column() as usize,
        field: Some(format!(
            "applications[{i}].destination.kubeConfig.secretRef.{field}"
        )),
        message: format!("application {}: {message}", app.name),
    };
    let mut problems = Vec::new();
    if !crate::dns_name::is_dns_subdomain(&secret.name) {
        problems.push(at(
            "name",
            format!(
                "{:?} is not a Secret name (lowercase letters, digits, '-' and '.'; at most 253)",
                secret.name
            ),
        ));
    }
    let key_ok = !secret.key.is_empty()
        && secret.key.len() <= 253
        && secret
            .key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !key_ok {
        problems.push(at(
            "key",
            format!(
                "{:?} is not a Secret key (letters, digits, '-', '_' and '.')",
                secret.key
            ),
        ));
    }
    problems
}

fn validate_policy(path: &Path, policy: &ImagePolicy) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let mut field_problem = |field: &str, message: String| {
        problems.push(ConfigProblem {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: Some(field.into()),
            message,
        });
    };
    if policy.api_version != "relbot.dev/v1alpha1" {
        field_problem(
            "apiVersion",
            format!(
                "{:?} is not supported (use relbot.dev/v1alpha1)",
                policy.api_version
            ),
        );
    }
    if policy.kind != "ImagePolicy" {
        field_problem("kind", format!("{:?} is not an ImagePolicy", policy.kind));
    }
    if !is_dns_label(&policy.metadata.name) {
        field_problem(
            "metadata.name",
            format!("{:?} is not a DNS-1123 label", policy.metadata.name),
        );
    }
    let image = &policy.spec.image;
    // `host:5000/repo` has a port, not a tag.
    let split = split_reference(image);
    if image.is_empty()
        || image.contains(char::is_whitespace)
        || split.tag.is_some()
        || split.digest.is_some()
    {
        field_problem(
            "spec.image",
            format!(
                "{image:?} must be an image repository without tag or digest (e.g. docker.io/ahuora/django-api)"
            ),
        );
    }
    if let Some(pattern) = &policy.spec.tag_pattern
        && let Err(e) = regex::Regex::new(pattern)
    {
        field_problem("spec.tagPattern", format!("bad regular expression: {e}"));
    }
    for glob in &policy.spec.files {
        if let Err(e) = globset::Glob::new(glob) {
            field_problem("spec.files", format!("bad glob {glob:?}: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn problem(text: &str) -> ConfigProblem {
        let err = parse_str::<Config>(Path::new("relbot.yaml"), text).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        err.problems.into_iter().next().unwrap()
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(config_dir(Path::new("relbot.yaml")), Path::new("."));
        assert_eq!(config_dir(Path::new("./relbot.yaml")), Path::new("."));
        assert_eq!(config_dir(Path::new("repo/relbot.yaml")), Path::new("repo"));
        assert_eq!(config_dir(Path::new("/relbot.yaml")), Path::new("/"));
    }

    #[test]
    fn a_plain_folder_is_one_application_at_its_root() {
        let loaded = for_folder(Path::new("manifests"), "web", "shop").unwrap();
        assert_eq!(loaded.base_dir(), Path::new("manifests"));
        let app = &loaded.config.applications[0];
        assert_eq!(
            (app.name.as_str(), app.path.as_path()),
            ("web", Path::new("."))
        );
        assert_eq!(app.namespace.as_deref(), Some("shop"));
        let err = for_folder(Path::new("m"), "Web_App", "shop").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m: --app-name: \"Web_App\" is not a DNS-1123 label (lowercase letters, digits, '-'; at most 63)"
        );
    }

    #[test]
    fn unknown_field_names_line_column_and_field() {
        let p = problem(
            "applications:\n  - name: web\n    path: apps/web\n    sync:\n      prune: true\n      selfheal: true\n",
        );
        assert_eq!((p.line, p.column), (6, 7), "{p}");
        assert!(p.message.contains("selfheal"), "{p}");
    }

    fn validated(text: &str) -> Vec<ConfigProblem> {
        let config: Config = parse_str(Path::new("relbot.yaml"), text).unwrap();
        validate_config(Path::new("relbot.yaml"), &config)
    }

    #[test]
    fn a_destination_names_a_secret_key_with_flux_default() {
        let config: Config = parse_str(
            Path::new("relbot.yaml"),
            "applications:\n  - name: web\n    path: web\n    destination:\n      kubeConfig:\n        secretRef: { name: prod-eu }\n  - name: api\n    path: api\n",
        )
        .unwrap();
        let web = config.applications[0].destination().expect("a destination");
        assert_eq!(web.name(), "prod-eu");
        assert_eq!(web.kube_config.secret_ref.key, "value");
        assert!(config.applications[1].destination().is_none());
    }

    #[test]
    fn a_bad_destination_is_reported_at_its_line_naming_the_application() {
        let problems = validated(
            "applications:\n  - name: web\n    path: web\n  - name: api\n    path: api\n    destination:\n      kubeConfig:\n        secretRef: { name: Prod_EU, key: \"a/b\" }\n",
        );
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "relbot.yaml:7:7: applications[1].destination.kubeConfig.secretRef.name: application api: \"Prod_EU\" is not a Secret name (lowercase letters, digits, '-' and '.'; at most 253)",
                "relbot.yaml:7:7: applications[1].destination.kubeConfig.secretRef.key: application api: \"a/b\" is not a Secret key (letters, digits, '-', '_' and '.')",
            ]
        );
        // A misspelt field is serde's: at its own line and column.
        let p = problem(
            "applications:\n  - name: api\n    path: api\n    destination:\n      kubeconfig: {}\n",
        );
        assert_eq!(p.line, 5, "{p}");
    }

    #[test]
    fn bad_duration_points_at_the_value() {
        let p =
            problem("repo:\n  url: file:///tmp/x\n  interval: 3 fortnights\napplications: []\n");
        assert_eq!(p.line, 3, "{p}");
        assert!(p.message.contains("bad duration"), "{p}");
    }

    #[test]
    fn serve_shards_must_be_at_least_one() {
        let text = |shards: &str| {
            format!(
                "applications:\n  - name: web\n    path: apps/web\nserve:\n  shards: {shards}\n"
            )
        };
        let config: Config = parse_str(Path::new("relbot.yaml"), &text("3")).unwrap();
        assert_eq!(config.serve.shards, Some(3));
        assert!(validate_config(Path::new("relbot.yaml"), &config).is_empty());
        for bad in ["0", "257"] {
            let config: Config = parse_str(Path::new("relbot.yaml"), &text(bad)).unwrap();
            let problems = validate_config(Path::new("relbot.yaml"), &config);
            assert_eq!(
                problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                vec![format!(
                    "relbot.yaml: serve.shards: {bad} shards: must be between 1 and 256 (leave it out to have one replica sync everything)"
                )]
            );
        }
        let p = problem("applications: []\nserve:\n  shard: 3\n");
        assert!(p.message.contains("shard"), "{p}");
    }
}
