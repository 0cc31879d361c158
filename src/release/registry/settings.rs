//! Where each registry is reached: mirrors per host, plain HTTP for loopback
//! and `insecure` hosts, page sizes, retries and timeouts.

use std::collections::HashMap;
use std::time::Duration;

use super::backoff::RetryPolicy;
use crate::config::RegistryConfig;
use crate::image::{self, ImageRef};

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    hosts: HashMap<String, HostSettings>,
    /// `n=` on tag lists; `None` leaves the page size to the registry.
    pub page_size: Option<u32>,
    /// Refuse to read more pages than this for one image.
    pub max_pages: usize,
    pub retry: RetryPolicy,
    /// Per request, connection included.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
struct HostSettings {
    mirror: Option<String>,
    insecure: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            hosts: HashMap::new(),
            page_size: Some(1000),
            max_pages: 100,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RegistrySettings {
    /// From `registries:` in `relbot.yaml`.
    pub fn from_config(registries: &[RegistryConfig]) -> Self {
        let mut settings = Self::default();
        for r in registries {
            settings.set_host(&r.host, r.mirror.as_deref(), r.insecure);
        }
        settings
    }

    /// Reach `host` through `mirror` (a `host[:port]`, e.g. the pull-through
    /// registry a K3s cluster pulls from); `insecure` allows plain HTTP.
    pub fn set_host(&mut self, host: &str, mirror: Option<&str>, insecure: bool) {
        let mirror = mirror.map(|m| {
            m.trim()
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        });
        self.hosts.insert(
            image::normalise_registry(host),
            HostSettings { mirror, insecure },
        );
    }

    /// `http(s)://host[:port]` that serves `image`'s `/v2/` API.
    pub fn base_url(&self, image: &ImageRef) -> String {
        let settings = self.hosts.get(&image.registry).cloned().unwrap_or_default();
        let host = settings
            .mirror
            .clone()
            .unwrap_or_else(|| image.api_host().to_string());
        let mirror_insecure = self
            .hosts
            .get(&image::normalise_registry(&host))
            .is_some_and(|h| h.insecure);
        let plain = image::is_loopback(&host)
            || mirror_insecure
            || (settings.insecure && settings.mirror.is_none());
        format!("{}://{host}", if plain { "http" } else { "https" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn schemes_follow_docker_rules() {
        let mut settings = RegistrySettings::default();
        assert_eq!(
            settings.base_url(&image("nginx")),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            settings.base_url(&image("127.0.0.1:5000/app")),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            settings.base_url(&image("localhost:5000/app")),
            "http://localhost:5000"
        );
        assert_eq!(
            settings.base_url(&image("registry.local:5000/app")),
            "https://registry.local:5000"
        );
        settings.set_host("registry.local:5000", None, true);
        assert_eq!(
            settings.base_url(&image("registry.local:5000/app")),
            "http://registry.local:5000"
        );
    }

    #[test]
    fn mirrors_replace_the_host_and_bring_their_own_scheme() {
        let settings = RegistrySettings::from_config(&[
            RegistryConfig {
                host: "docker.io".into(),
                mirror: Some("mirror.k3s.local:5000".into()),
                insecure: false,
            },
            RegistryConfig {
                host: "mirror.k3s.local:5000".into(),
                mirror: None,
                insecure: true,
            },
            RegistryConfig {
                host: "ghcr.io".into(),
                mirror: Some("http://127.0.0.1:6000/".into()),
                insecure: false,
            },
        ]);
        assert_eq!(
            settings.base_url(&image("nginx")),
            "http://mirror.k3s.local:5000"
        );
        assert_eq!(
            settings.base_url(&image("ghcr.io/a/b")),
            "http://127.0.0.1:6000"
        );
        assert_eq!(settings.base_url(&image("quay.io/a/b")), "https://quay.io");
    }
}
