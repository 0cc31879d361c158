//! A real registry for tests: Debian's `docker-registry` (distribution v2),
//! started on a free loopback port with its own config and data directory,
//! seeded over its HTTP API, and killed when dropped.
//!
//! Install it (CI does) without letting dpkg start a system service:
//! `printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
//!  && apt-get install -y docker-registry apache2-utils; rm -f /usr/sbin/policy-rc.d`
//!
//! The binary reads every `REGISTRY_<SECTION>_<KEY>` environment variable as
//! a config override, so it runs with a cleared environment.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// How the registry checks callers.
#[derive(Debug, Clone)]
pub enum Auth {
    Anonymous,
    /// htpasswd (bcrypt) basic auth with one user.
    Htpasswd {
        username: String,
        password: String,
    },
}

/// Manifest flavour to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    Docker,
    Oci,
}

pub struct RealRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub host: String,
    auth: Auth,
    http: reqwest::Client,
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        for name in ["docker-registry", "registry"] {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the `docker-registry` binary is not installed; these tests need a real registry. Install it with \
         a policy-rc.d that forbids service starts: printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && \
         chmod +x /usr/sbin/policy-rc.d && apt-get install -y docker-registry apache2-utils; rm -f /usr/sbin/policy-rc.d"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn htpasswd_line(username: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-Bbn", username, password])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `htpasswd` ({e}); install apache2-utils"));
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl RealRegistry {
    pub async fn start(auth: Auth) -> Self {
        relbot::tls::init();
        let binary = registry_binary();
        let mut last_log = String::new();
        // A port picked free can be taken before the registry binds it: try again.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            // Sent back on every response: proves the registry answering on the
            // port is this one, not another test's that took the port first.
            let instance = dir
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let auth_block = match &auth {
                Auth::Anonymous => String::new(),
                Auth::Htpasswd { username, password } => {
                    let path = dir.path().join("htpasswd");
                    std::fs::write(&path, htpasswd_line(username, password)).unwrap();
                    format!(
                        "auth:\n  htpasswd:\n    realm: relbot-test\n    path: {}\n",
                        path.display()
                    )
                }
            };
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    \
                 enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  \
                 secret: relbot-test-{port}\n  headers:\n    X-Relbot-Instance: [\"{instance}\"]\n{auth_block}",
                data = dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config_path)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let http = reqwest::Client::new();
            let mut registry = Self {
                child,
                dir,
                host: format!("127.0.0.1:{port}"),
                auth: auth.clone(),
                http,
            };
            if registry
                .wait_until_up(&instance, Duration::from_secs(10))
                .await
            {
                return registry;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not answer on /v2/ within 10 s; its log:\n{last_log}");
    }

    async fn wait_until_up(&mut self, instance: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = self
                .http
                .get(format!("{}/v2/", self.base_url()))
                .send()
                .await
                && matches!(r.status().as_u16(), 200 | 401)
            {
                let ours = r
                    .headers()
                    .get("x-relbot-instance")
                    .is_some_and(|v| v.as_bytes() == instance.as_bytes());
                if ours {
                    return true;
                }
                // Someone else's registry holds the port: ours cannot bind it.
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// `127.0.0.1:<port>/<repository>`.
    pub fn image(&self, repository: &str) -> relbot::release::registry::ImageRef {
        relbot::release::registry::ImageRef::parse(&format!("{}/{repository}", self.host)).unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn authed(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::Anonymous => builder,
            Auth::Htpasswd { username, password } => builder.basic_auth(username, Some(password)),
        }
    }

    async fn push_blob(&self, repository: &str, bytes: Vec<u8>) -> (String, usize) {
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        let size = bytes.len();
        let base = self.base_url();
        let head = self
            .authed(
                self.http
                    .head(format!("{base}/v2/{repository}/blobs/{digest}")),
            )
            .send()
            .await
            .unwrap();
        if head.status().is_success() {
            return (digest, size);
        }
        let start = self
            .authed(
                self.http
                    .post(format!("{base}/v2/{repository}/blobs/uploads/")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            start.status().as_u16(),
            202,
            "starting a blob upload to {repository}"
        );
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let mut url = reqwest::Url::parse(&base).unwrap().join(&location).unwrap();
        url.query_pairs_mut().append_pair("digest", &digest);
        let put = self
            .authed(
                self.http
                    .put(url)
                    .header("content-type", "application/octet-stream")
                    .body(bytes),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            put.status().as_u16(),
            201,
            "finishing a blob upload to {repository}"
        );
        (digest, size)
    }

    /// Pushes one tiny image under each tag, each with its own config (so its
    /// own manifest digest). Returns tag → manifest digest.
    pub async fn seed(
        &self,
        repository: &str,
        tags: &[&str],
        media: Media,
    ) -> HashMap<String, String> {
        let layer = self
            .push_blob(repository, b"relbot synthetic layer\n".to_vec())
            .await;
        let mut digests = HashMap::new();
        for tag in tags {
            let config = format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"org.opencontainers.image.version":"{tag}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
                layer.0
            );
            let config = self.push_blob(repository, config.into_bytes()).await;
            let digest = self
                .put_manifest(repository, tag, &manifest(media, &config, &layer))
                .await;
            digests.insert(tag.to_string(), digest);
        }
        digests
    }

    /// Many tags sharing one manifest: one request per tag, `concurrency` at once.
    pub async fn seed_bulk(&self, repository: &str, tags: &[String], concurrency: usize) -> String {
        let layer = self
            .push_blob(repository, b"relbot synthetic layer\n".to_vec())
            .await;
        let config = self.push_blob(repository, br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec()).await;
        let body = manifest(Media::Docker, &config, &layer);
        let digest = format!("sha256:{}", hex(&Sha256::digest(body.as_bytes())));
        futures::stream::iter(tags)
            .map(|tag| self.put_manifest(repository, tag, &body))
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        digest
    }

    async fn put_manifest(&self, repository: &str, tag: &str, body: &str) -> String {
        let media = if body.contains(OCI_MANIFEST) {
            OCI_MANIFEST
        } else {
            DOCKER_MANIFEST
        };
        let response = self
            .authed(self.http.put(format!(
                "{}/v2/{repository}/manifests/{tag}",
                self.base_url()
            )))
            .header("content-type", media)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(
            status,
            201,
            "manifest PUT {repository}:{tag}: {}",
            response.text().await.unwrap_or_default()
        );
        format!("sha256:{}", hex(&Sha256::digest(body.as_bytes())))
    }
}

fn manifest(media: Media, config: &(String, usize), layer: &(String, usize)) -> String {
    let (manifest_type, config_type, layer_type) = match media {
        Media::Docker => (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
        Media::Oci => (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
    };
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{manifest_type}","config":{{"mediaType":"{config_type}","size":{},"digest":"{}"}},"layers":[{{"mediaType":"{layer_type}","size":{},"digest":"{}"}}]}}"#,
        config.1, config.0, layer.1, layer.0
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
