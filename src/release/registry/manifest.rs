//! A tag's manifest digest, by `HEAD` (which Docker Hub does not count as a
//! pull), else the sha256 of the manifest's bytes.

use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

use super::client::{RegistryClient, Request};
use super::error::{RegistryError, parse_url, status_error, transport};
use crate::image::ImageRef;

/// Manifest media types we accept on `HEAD`: without the OCI ones a registry
/// answers 404 for OCI-typed images.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

impl RegistryClient {
    /// The digest (`sha256:…`) of `image:tag`'s manifest or index, by `HEAD`.
    pub async fn manifest_digest(
        &self,
        image: &ImageRef,
        tag: &str,
    ) -> Result<String, RegistryError> {
        let base = self.settings.base_url(image);
        let url = parse_url(&format!("{base}/v2/{}/manifests/{tag}", image.repository))?;
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let head = Request {
            image,
            method: Method::HEAD,
            url: url.clone(),
            accept: Some(accept.clone()),
            if_none_match: None,
        };
        let response = self.send(&head).await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    image: image.name(),
                    what: format!("tag {tag:?}"),
                    url: url.to_string(),
                });
            }
            s if !s.is_success() => return Err(status_error(&url, response, 1).await),
            _ => {}
        }
        if let Some(digest) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            return Ok(digest.to_string());
        }
        // A registry without the header: the digest is the manifest bytes' sha256
        // (this GET counts as a pull on registries that meter them).
        let get = Request {
            image,
            method: Method::GET,
            url: url.clone(),
            accept: Some(accept),
            if_none_match: None,
        };
        let response = self.send(&get).await?;
        if !response.status().is_success() {
            return Err(status_error(&url, response, 1).await);
        }
        let body = response.bytes().await.map_err(transport(&url))?;
        Ok(format!("sha256:{}", hex(&Sha256::digest(&body))))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digest_matches_sha256sum() {
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
