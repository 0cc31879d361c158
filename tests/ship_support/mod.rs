//! Helpers shared by the `ship_*` tests (deploy/, Dockerfile, workflows,
//! docs). Each test binary uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root (where Cargo.toml, deploy/ and docs/ are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(relative: impl AsRef<Path>) -> String {
    let path = repo_root().join(relative.as_ref());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `Kind group namespace/name`, for messages and maps.
pub fn key_of(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    format!(
        "{} {} {}/{}",
        object["kind"].as_str().unwrap_or_default(),
        group,
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The relbot binary Cargo built for these tests.
pub fn relbot_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_relbot"))
}
