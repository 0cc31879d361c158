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

/// The CRDs a fresh K3s cluster has that the sample platform uses: Traefik's
/// Middleware and the Helm controller's HelmChart (schemas left open).
pub fn k3s_crds() -> Vec<Value> {
    [
        ("traefik.io", "Middleware", "middlewares", "v1alpha1"),
        ("helm.cattle.io", "HelmChart", "helmcharts", "v1"),
    ]
    .iter()
    .map(|(group, kind, plural, version)| {
        serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(),
                    "listKind": format!("{kind}List")},
                "versions": [{"name": version, "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        })
    })
    .collect()
}

/// An emulated K3s: the API-server emulator with workload controllers and
/// K3s' CRDs installed.
pub fn start_k3s_like() -> kubesim::SimHandle {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let sim = kubesim::KubeSim::start_blocking(kubesim::SimOptions {
        controllers: Some(kubesim::ControllerOptions::default()),
        ..Default::default()
    })
    .expect("start the emulator");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(sim.client());
        for crd in k3s_crds() {
            crds.create(
                &Default::default(),
                &serde_json::from_value(crd).expect("CRD"),
            )
            .await
            .expect("create CRD");
        }
    });
    sim
}

/// deploy/ rendered as relbot renders it (natively, no external kustomize).
pub fn deploy_objects() -> Vec<Value> {
    let config: relbot::config::Config = serde_saphyr::from_str(
        "applications:\n  - name: relbot\n    path: deploy\n    namespace: relbot\n",
    )
    .expect("config");
    let options = relbot::source::render::RenderOptions {
        kustomize: relbot::source::kustomize::KustomizeTool::Disabled,
    };
    let apps = relbot::source::load_desired_with(&repo_root(), &config, &options)
        .unwrap_or_else(|e| panic!("deploy/ does not render: {e}"));
    apps[0].manifests.iter().map(|m| m.object.clone()).collect()
}
