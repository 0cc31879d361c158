//! Configuration reload: watch `relbot.yaml` and the policies directory,
//! debounce bursts of file events, reload with [`crate::config::load`], and
//! publish the new configuration only if it is valid. A bad edit is logged
//! with every problem (file:line) and the last good configuration stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::config::{LoadedConfig, load};

/// Default quiet time after the last file event before reloading.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path} for changes: {source}")]
pub struct ReloadError {
    pub path: PathBuf,
    #[source]
    pub source: notify::Error,
}

/// The current configuration, updated on valid changes.
pub struct ConfigWatch {
    receiver: watch::Receiver<Arc<LoadedConfig>>,
    stop: CancellationToken,
}

impl ConfigWatch {
    pub fn subscribe(&self) -> watch::Receiver<Arc<LoadedConfig>> {
        self.receiver.clone()
    }

    pub fn current(&self) -> Arc<LoadedConfig> {
        self.receiver.borrow().clone()
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Directories to watch for `config`: the config file's directory (files are
/// often replaced by rename, and Kubernetes swaps ConfigMap mounts through a
/// symlinked directory, so watching the file itself would miss changes) and
/// the policies directory.
fn watched_dirs(config: &LoadedConfig) -> Vec<PathBuf> {
    let mut dirs = vec![config.base_dir().to_path_buf()];
    if let Some(policies) = &config.config.policies {
        let dir = config.base_dir().join(policies);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Starts watching. `initial` is the configuration already loaded at start-up.
pub fn watch_config(
    initial: LoadedConfig,
    debounce: Duration,
    metrics: Arc<Metrics>,
) -> Result<ConfigWatch, ReloadError> {
    let (events_tx, events_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        // Access events (reads) would make our own reload trigger another.
        if let Ok(event) = result
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            let _ = events_tx.send(());
        }
    })
    .map_err(|source| ReloadError {
        path: initial.path.clone(),
        source,
    })?;
    let dirs = watched_dirs(&initial);
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| ReloadError {
                path: dir.clone(),
                source,
            })?;
    }
    let path = initial.path.clone();
    let (tx, receiver) = watch::channel(Arc::new(initial));
    let stop = CancellationToken::new();
    tokio::spawn(reload_loop(
        path,
        watcher,
        dirs,
        events_rx,
        tx,
        debounce,
        metrics,
        stop.clone(),
    ));
    Ok(ConfigWatch { receiver, stop })
}

#[allow(clippy::too_many_arguments)]
async fn reload_loop(
    path: PathBuf,
    mut watcher: RecommendedWatcher,
    mut dirs: Vec<PathBuf>,
    mut events: mpsc::UnboundedReceiver<()>,
    tx: watch::Sender<Arc<LoadedConfig>>,
    debounce: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            event = events.recv() => if event.is_none() { return },
        }
        // Debounce: wait until no event arrived for `debounce`.
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(debounce) => break,
                event = events.recv() => if event.is_none() { return },
            }
        }
        let Some(loaded) = reload_once(&path, &tx.borrow(), &metrics) else {
            continue;
        };
        let new_dirs = watched_dirs(&loaded);
        if new_dirs != dirs {
            for dir in dirs.iter().filter(|d| !new_dirs.contains(d)) {
                let _ = watcher.unwatch(dir);
            }
            for dir in new_dirs.iter().filter(|d| !dirs.contains(d)) {
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    tracing::warn!("cannot watch {} for changes: {e}", dir.display());
                }
            }
            dirs = new_dirs;
        }
        tx.send_replace(Arc::new(loaded));
    }
}

/// Loads the configuration again; None when it is invalid (logged) or unchanged.
fn reload_once(path: &Path, current: &LoadedConfig, metrics: &Metrics) -> Option<LoadedConfig> {
    match load(path) {
        Ok(loaded) => {
            let unchanged = loaded.config == current.config
                && loaded.policies.len() == current.policies.len()
                && loaded
                    .policies
                    .iter()
                    .zip(&current.policies)
                    .all(|(a, b)| a.file == b.file && a.policy == b.policy);
            if unchanged {
                return None;
            }
            metrics.config_reloads.inc(&["ok"]);
            tracing::info!(
                config = %path.display(),
                applications = loaded.config.applications.len(),
                policies = loaded.policies.len(),
                "configuration reloaded"
            );
            Some(loaded)
        }
        Err(e) => {
            metrics.config_reloads.inc(&["rejected"]);
            tracing::error!(config = %path.display(), "configuration change rejected; keeping the last good one:\n{e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "applications:\n  - name: a\n    path: manifests/a\npolicies: policies\n";
    const POLICY: &str = "apiVersion: relbot.dev/v1alpha1\nkind: ImagePolicy\nmetadata: { name: web }\nspec:\n  image: ghcr.io/acme/web\n  semver: \">=1.0.0\"\n";

    async fn wait_for_reload(
        rx: &mut watch::Receiver<Arc<LoadedConfig>>,
        what: impl Fn(&LoadedConfig) -> bool,
    ) -> bool {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| what(c)))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn reloads_good_changes_and_keeps_last_good_on_bad() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("relbot.yaml");
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(&config, GOOD).unwrap();
        let metrics = Arc::new(Metrics::new());
        let watch = watch_config(
            load(&config).unwrap(),
            Duration::from_millis(50),
            metrics.clone(),
        )
        .unwrap();
        let mut rx = watch.subscribe();
        assert_eq!(watch.current().config.applications.len(), 1);

        // A valid change: a second application.
        std::fs::write(
            &config,
            GOOD.replace("policies:", "  - name: b\n    path: manifests/b\npolicies:"),
        )
        .unwrap();
        assert!(
            wait_for_reload(&mut rx, |c| c.config.applications.len() == 2).await,
            "valid change not picked up"
        );

        // A new policy file in the policies directory.
        std::fs::write(dir.path().join("policies/web.yaml"), POLICY).unwrap();
        assert!(
            wait_for_reload(&mut rx, |c| c.policies.len() == 1).await,
            "new policy not picked up"
        );

        // A broken edit is rejected; the last good configuration stays.
        std::fs::write(&config, "applications: [ {name: BAD NAME, path: /abs} ]\n").unwrap();
        let rejected = tokio::time::timeout(Duration::from_secs(10), async {
            while metrics.config_reloads.get(&["rejected"]) < 1.0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(rejected.is_ok(), "bad change not noticed");
        assert_eq!(watch.current().config.applications.len(), 2);
        assert_eq!(watch.current().policies.len(), 1);
        assert!(metrics.config_reloads.get(&["ok"]) >= 2.0);
    }

    /// Writes `files` the way the kubelet's atomic writer publishes a
    /// ConfigMap volume: a timestamped directory, `..data` pointing at it,
    /// and one symlink per key through `..data`. Later calls swap `..data`
    /// with a rename, which is the only event the pod's directory sees.
    fn publish_configmap(mount: &Path, generation: u32, files: &[(&str, &str)]) {
        use std::os::unix::fs::symlink;
        let version = format!("..2026_11_23_00_00_0{generation}");
        std::fs::create_dir_all(mount.join(&version)).unwrap();
        for (key, text) in files {
            std::fs::write(mount.join(&version).join(key), text).unwrap();
            let link = mount.join(key);
            if link.symlink_metadata().is_err() {
                symlink(Path::new("..data").join(key), &link).unwrap();
            }
        }
        symlink(&version, mount.join("..data_tmp")).unwrap();
        std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    }

    /// deploy/ mounts relbot.yaml and the policies as two ConfigMap volumes
    /// (/etc/relbot/config and /etc/relbot/policies, `policies: ../policies`).
    #[tokio::test]
    async fn follows_configmap_volumes_updated_by_the_kubelet() {
        let root = tempfile::tempdir().unwrap();
        let (config_dir, policies_dir) = (root.path().join("config"), root.path().join("policies"));
        let config_text = GOOD.replace("policies: policies", "policies: ../policies");
        publish_configmap(&config_dir, 1, &[("relbot.yaml", &config_text)]);
        publish_configmap(&policies_dir, 1, &[("web.yaml", POLICY)]);
        let loaded = load(&config_dir.join("relbot.yaml")).unwrap();
        assert_eq!(
            loaded.policies.len(),
            1,
            "the ..data entries are not policies"
        );
        let watch =
            watch_config(loaded, Duration::from_millis(50), Arc::new(Metrics::new())).unwrap();
        let mut rx = watch.subscribe();

        let two_apps =
            config_text.replace("policies:", "  - name: b\n    path: manifests/b\npolicies:");
        publish_configmap(&config_dir, 2, &[("relbot.yaml", &two_apps)]);
        assert!(
            wait_for_reload(&mut rx, |c| c.config.applications.len() == 2).await,
            "a ConfigMap update of relbot.yaml was not picked up"
        );

        let second = POLICY
            .replace("name: web", "name: api")
            .replace("acme/web", "acme/api");
        publish_configmap(
            &policies_dir,
            2,
            &[("web.yaml", POLICY), ("api.yaml", &second)],
        );
        assert!(
            wait_for_reload(&mut rx, |c| c.policies.len() == 2).await,
            "a ConfigMap update of the policies was not picked up"
        );
    }
}
