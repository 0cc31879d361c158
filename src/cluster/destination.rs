//! Clients for the other clusters applications sync into: each built from
//! a kubeconfig kept in a Secret on relbot's own ("home") cluster, the way
//! Flux's `spec.kubeConfig.secretRef` and Argo CD's cluster Secrets work.
//!
//! A client is kept per Secret and rebuilt only when the Secret's
//! `resourceVersion` changes, so a rotated token is picked up by the next
//! run while an unchanged one costs one GET a run. The kubeconfig and its
//! credentials never leave this module in text: errors name the Secret,
//! its key and the server, never the content.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::client::{Cluster, ReadOnlyCluster, build_client};
use super::discovery::ResolvedKind;
use crate::redact::redact_userinfo;

/// Where a destination's kubeconfig is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

impl std::fmt::Display for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "key {} of Secret {}/{}",
            self.key, self.namespace, self.name
        )
    }
}

/// Why a destination cannot be used. Every message starts "cannot reach
/// cluster NAME:", NAME being the Secret's name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot reach cluster {name}: {why}")]
pub struct DestinationError {
    pub name: String,
    pub why: String,
    /// The cluster itself did not answer (refused, timed out): a dry-run
    /// may plan offline, as it does for an unreachable home cluster. False
    /// for a missing Secret, a broken kubeconfig or refused credentials.
    pub silent: bool,
}

impl DestinationError {
    pub fn new(name: &str, why: impl Into<String>) -> Self {
        DestinationError {
            name: name.to_string(),
            why: redact_userinfo(&why.into()),
            silent: false,
        }
    }

    pub fn silent(name: &str, why: impl Into<String>) -> Self {
        DestinationError {
            silent: true,
            ..Self::new(name, why)
        }
    }
}

/// A destination's client, shared by every run until its Secret changes.
#[derive(Clone)]
pub struct DestinationClient {
    pub name: String,
    client: kube::Client,
    server: String,
}

impl std::fmt::Debug for DestinationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationClient")
            .field("name", &self.name)
            .field("server", &self.server)
            .finish()
    }
}

impl DestinationClient {
    /// A handle that syncs into the destination (fresh request counters).
    pub fn writable(&self) -> Cluster {
        Cluster::from_client(self.client.clone(), self.server.clone())
    }

    /// A handle that can only read and dry-run (`sync --dry-run`, `diff`).
    pub fn read_only(&self) -> ReadOnlyCluster {
        ReadOnlyCluster::from_client(self.client.clone(), self.server.clone())
    }

    pub fn server(&self) -> &str {
        &self.server
    }
}

struct Cached {
    resource_version: String,
    client: DestinationClient,
}

/// The destinations' clients, read through the home cluster.
pub struct Destinations {
    home: ReadOnlyCluster,
    cache: Mutex<HashMap<SecretKey, Cached>>,
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destinations")
            .field("home", &self.home.server())
            .finish()
    }
}

fn secrets() -> ResolvedKind {
    ResolvedKind {
        resource: ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        },
        namespaced: true,
        pending: false,
    }
}

impl Destinations {
    /// `home` is the cluster the Secrets live on (relbot's own).
    pub fn new(home: ReadOnlyCluster) -> Self {
        Destinations {
            home,
            cache: Mutex::default(),
        }
    }

    /// relbot's own cluster, where the Secrets are.
    pub fn home(&self) -> &ReadOnlyCluster {
        &self.home
    }

    /// The client for the cluster whose kubeconfig is at `at`: the cached
    /// one while the Secret is unchanged, else one built from it now. Does
    /// not contact the destination (see [`ReadOnlyCluster::ping`]).
    pub async fn client(&self, at: &SecretKey) -> Result<DestinationClient, DestinationError> {
        let name = at.name.as_str();
        let secret = match self.home.get(&secrets(), Some(&at.namespace), name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(DestinationError::new(
                    name,
                    format!(
                        "Secret {}/{name} does not exist on relbot's cluster {} (create it with the cluster's kubeconfig under key {})",
                        at.namespace,
                        self.home.server(),
                        at.key
                    ),
                ));
            }
            Err(failure) => {
                return Err(DestinationError::new(
                    name,
                    format!("cannot read Secret {}/{name}: {failure}", at.namespace),
                ));
            }
        };
        let version = secret["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(cached) = self.lock().get(at)
            && cached.resource_version == version
            && !version.is_empty()
        {
            return Ok(cached.client.clone());
        }
        let client = build(at, &secret).await?;
        tracing::info!(destination = %name, server = %client.server, "built a client for a destination cluster");
        self.lock().insert(
            at.clone(),
            Cached {
                resource_version: version,
                client: client.clone(),
            },
        );
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Cached>> {
        // A panic elsewhere leaves a usable map: at worst a client is rebuilt.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A client from the kubeconfig in `secret` (a Secret object as JSON).
async fn build(at: &SecretKey, secret: &Value) -> Result<DestinationClient, DestinationError> {
    let name = at.name.as_str();
    let text = kubeconfig_text(at, secret).map_err(|why| DestinationError::new(name, why))?;
    // The parser's message quotes the text around the fault, which may be
    // the token: say only that it is not YAML of a kubeconfig.
    let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|_| {
        DestinationError::new(
            name,
            format!("{at} is not a kubeconfig (it does not parse as one)"),
        )
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| {
            // First line only, for the same reason.
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            DestinationError::new(name, format!("the kubeconfig in {at}: {first}"))
        })?;
    crate::tls::init();
    let (client, server) =
        build_client(config).map_err(|e| DestinationError::new(name, e.to_string()))?;
    Ok(DestinationClient {
        name: name.to_string(),
        client,
        server,
    })
}

/// The kubeconfig's text: `data` is base64 (what the API server returns),
/// `stringData` only ever appears in manifests but costs nothing to read.
fn kubeconfig_text(at: &SecretKey, secret: &Value) -> Result<String, String> {
    if let Some(encoded) = secret["data"][&at.key].as_str() {
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| format!("{at} is not base64"))?;
        return String::from_utf8(bytes).map_err(|_| format!("{at} is not text"));
    }
    if let Some(text) = secret["stringData"][&at.key].as_str() {
        return Ok(text.to_string());
    }
    let mut keys: Vec<&str> = secret["data"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    keys.sort();
    Err(format!(
        "Secret {}/{} has no key {} (it has: {})",
        at.namespace,
        at.name,
        at.key,
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "very-secret-token";

    fn at() -> SecretKey {
        SecretKey {
            namespace: "relbot".into(),
            name: "prod-eu".into(),
            key: "value".into(),
        }
    }

    fn secret_with(key: &str, text: &str) -> Value {
        json!({"metadata": {"name": "prod-eu", "resourceVersion": "7"},
               "data": {key: BASE64.encode(text)}})
    }

    #[test]
    fn a_missing_key_names_the_keys_there_are_never_their_values() {
        let error = kubeconfig_text(&at(), &secret_with("config", TOKEN)).unwrap_err();
        assert_eq!(
            error,
            "Secret relbot/prod-eu has no key value (it has: config)"
        );
    }

    #[tokio::test]
    async fn a_broken_kubeconfig_is_named_without_its_content() {
        let text = format!("apiVersion: v1\nkind: Config\nusers: [{{ token: {TOKEN}");
        let error = build(&at(), &secret_with("value", &text))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot reach cluster prod-eu: key value of Secret relbot/prod-eu is not a kubeconfig"),
            "{error}"
        );
        assert!(!error.contains(TOKEN), "{error}");
    }

    #[tokio::test]
    async fn a_kubeconfig_gives_a_client_for_its_server() {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.9:6443\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {TOKEN}\n"
        );
        let client = build(&at(), &secret_with("value", &text)).await.unwrap();
        assert_eq!(client.server(), "https://10.0.0.9:6443");
        assert!(!format!("{client:?}").contains(TOKEN));
    }
}
