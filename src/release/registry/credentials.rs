//! Who we are to each registry: a username and password per host.
//!
//! Credentials come from (first match wins):
//! 1. environment variables `RELBOT_REGISTRY_<HOST>_USERNAME` and
//!    `RELBOT_REGISTRY_<HOST>_PASSWORD`, where `<HOST>` is the registry host
//!    upper-cased with every character that is not a letter or digit turned
//!    into `_` (`ghcr.io` → `GHCR_IO`, `registry.local:5000` →
//!    `REGISTRY_LOCAL_5000`, Docker Hub → `DOCKER_IO`);
//! 2. a docker `config.json` (`$DOCKER_CONFIG/config.json`, else
//!    `~/.docker/config.json`): `auths.<host>.auth` (base64 `user:password`)
//!    or `auths.<host>.username`/`password`; Docker Hub's key is
//!    `https://index.docker.io/v1/`. Credential helpers (`credsStore`) are
//!    not run.
//!
//! Nothing here ever prints a password or token: `Debug` is redacted.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::image::normalise_registry;

/// A username and password (or access token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials per registry host (normalised: Docker Hub is `docker.io`).
/// Comparable, so a long-running process can tell rotated credentials from
/// unchanged ones and keep its client (and token cache) only for the latter.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// From docker `config.json` and `insert`, keyed by normalised host.
    by_host: HashMap<String, Credential>,
    /// From `RELBOT_REGISTRY_<HOST>_*`, keyed by `<HOST>` (see [`env_key`]).
    env_by_key: HashMap<String, Credential>,
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hosts: Vec<&String> = self.by_host.keys().chain(self.env_by_key.keys()).collect();
        hosts.sort();
        f.debug_struct("RegistryCredentials")
            .field("hosts", &hosts)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "cannot read docker config {path}: {reason}; fix or remove the file, or set DOCKER_CONFIG to another directory"
    )]
    DockerConfig { path: PathBuf, reason: String },
}

impl RegistryCredentials {
    /// No credentials: every registry is contacted anonymously.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// From this process's environment and docker `config.json`.
    pub fn from_environment() -> Result<Self, CredentialsError> {
        let docker_config = std::env::var_os("DOCKER_CONFIG")
            .map(|dir| PathBuf::from(dir).join("config.json"))
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
            });
        Self::from_sources(
            std::env::vars(),
            docker_config.as_deref().filter(|p| p.exists()),
        )
    }

    /// From explicit sources (tests, or a mounted Secret path).
    pub fn from_sources(
        env: impl IntoIterator<Item = (String, String)>,
        docker_config: Option<&Path>,
    ) -> Result<Self, CredentialsError> {
        let mut creds = Self::default();
        if let Some(path) = docker_config {
            creds.by_host = read_docker_config(path)?;
        }
        let env: HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        for (key, username) in &env {
            let Some(host_key) = key
                .strip_prefix(ENV_PREFIX)
                .and_then(|k| k.strip_suffix("_USERNAME"))
            else {
                continue;
            };
            let Some(password) = env.get(&format!("{ENV_PREFIX}{host_key}_PASSWORD")) else {
                continue;
            };
            creds.env_by_key.insert(
                host_key.to_string(),
                Credential {
                    username: username.clone(),
                    password: password.clone(),
                },
            );
        }
        Ok(creds)
    }

    /// Adds (or replaces) the credential for `host`.
    pub fn insert(&mut self, host: &str, credential: Credential) {
        self.by_host.insert(normalise_registry(host), credential);
    }

    /// The credential for a registry host, if any.
    pub fn get(&self, host: &str) -> Option<&Credential> {
        let host = normalise_registry(host);
        self.env_by_key
            .get(&env_key(&host))
            .or_else(|| self.by_host.get(&host))
    }
}

const ENV_PREFIX: &str = "RELBOT_REGISTRY_";

/// `registry.local:5000` → `REGISTRY_LOCAL_5000`.
pub fn env_key(host: &str) -> String {
    normalise_registry(host)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn read_docker_config(path: &Path) -> Result<HashMap<String, Credential>, CredentialsError> {
    let fail = |reason: String| CredentialsError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let mut out = HashMap::new();
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Ok(out);
    };
    for (key, entry) in auths {
        let credential = if let Some(auth) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            // Never echo the value itself: it is the password.
            let decoded = STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    fail(format!("auths.{key:?}.auth is not base64 of user:password"))
                })?;
            let (username, password) = decoded.split_once(':').ok_or_else(|| {
                fail(format!("auths.{key:?}.auth is not base64 of user:password"))
            })?;
            Credential {
                username: username.to_string(),
                password: password.to_string(),
            }
        } else {
            match (
                entry.get("username").and_then(|u| u.as_str()),
                entry.get("password").and_then(|p| p.as_str()),
            ) {
                (Some(u), Some(p)) => Credential {
                    username: u.to_string(),
                    password: p.to_string(),
                },
                _ => continue,
            }
        };
        out.insert(normalise_registry(key), credential);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_name_hosts() {
        assert_eq!(env_key("ghcr.io"), "GHCR_IO");
        assert_eq!(env_key("registry.local:5000"), "REGISTRY_LOCAL_5000");
        assert_eq!(env_key("index.docker.io"), "DOCKER_IO");
    }

    #[test]
    fn env_beats_docker_config_and_docker_hub_aliases_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let hub = STANDARD.encode("hubuser:hubpass");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{hub}"}},
                "ghcr.io":{{"username":"gh","password":"ghpass"}},
                "quay.io":{{}}}}, "credsStore":"desktop"}}"#
            ),
        )
        .unwrap();
        let env = vec![
            (
                "RELBOT_REGISTRY_GHCR_IO_USERNAME".to_string(),
                "envuser".to_string(),
            ),
            (
                "RELBOT_REGISTRY_GHCR_IO_PASSWORD".to_string(),
                "envpass".to_string(),
            ),
            (
                "RELBOT_REGISTRY_LONELY_USERNAME".to_string(),
                "no-password".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let creds = RegistryCredentials::from_sources(env, Some(&path)).unwrap();
        assert_eq!(
            creds.get("registry-1.docker.io").unwrap().username,
            "hubuser"
        );
        assert_eq!(creds.get("docker.io").unwrap().password, "hubpass");
        assert_eq!(creds.get("ghcr.io").unwrap().username, "envuser");
        assert!(creds.get("quay.io").is_none());
        assert!(creds.get("lonely").is_none());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let mut creds = RegistryCredentials::anonymous();
        creds.insert(
            "ghcr.io",
            Credential {
                username: "u".into(),
                password: "hunter2".into(),
            },
        );
        let shown = format!("{creds:?} {:?}", creds.get("ghcr.io").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn bad_docker_config_names_the_file_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"ghcr.io":{"auth":"!!notbase64-supersecret"}}}"#,
        )
        .unwrap();
        let e = RegistryCredentials::from_sources(Vec::new(), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(e.contains("config.json") && e.contains("ghcr.io"), "{e}");
        assert!(!e.contains("supersecret"), "{e}");
    }
}
