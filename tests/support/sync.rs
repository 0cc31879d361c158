//! What the sync tests set up the same way: an application named after the
//! test's namespace, objects as read from a file, sync settings for tests,
//! a handle on the cluster, and a strict custom resource definition.

#![allow(dead_code)]

use std::time::Duration;

use kubesim::testing::TestCluster;
use kubesim::{ControllerOptions, SimOptions};
use relbot::cluster::client::Cluster;
use relbot::config::Application;
use relbot::manifest::{Manifest, Origin};
use relbot::sync::settings::SyncSettings;
use serde_json::{Value, json};

/// The application named after `tc`'s namespace, synced into it from
/// `apps/<namespace>`, with `extra` (whole YAML lines) added.
pub fn application(tc: &TestCluster, extra: &str) -> Application {
    let yaml = format!(
        "name: {ns}\npath: apps/{ns}\nnamespace: {ns}\n{extra}",
        ns = tc.namespace()
    );
    serde_saphyr::from_str(&yaml).expect("application YAML")
}

/// `object` as read from `file` at `line`.
pub fn manifest_in(file: &str, object: Value, line: usize) -> Manifest {
    Manifest {
        object,
        origin: Origin {
            file: file.into(),
            line,
        },
    }
}

/// `object` as read from `apps/shop/all.yaml` at `line`.
pub fn manifest(object: Value, line: usize) -> Manifest {
    manifest_in("apps/shop/all.yaml", object, line)
}

/// Eight writes at a time, the status recorded in `tc`'s namespace, a 10 s
/// health timeout polled every 100 ms, and a wait for the last wave.
pub fn settings(tc: &TestCluster) -> SyncSettings {
    SyncSettings {
        concurrency: 8,
        status_namespace: tc.namespace().to_string(),
        health_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(100),
        record_status: true,
        progress: Default::default(),
        health_rules: Default::default(),
        wait_for_last_wave: true,
        trigger: "test".into(),
    }
}

/// A writable handle on `tc`'s cluster.
pub fn cluster(tc: &TestCluster) -> Cluster {
    Cluster::from_client(tc.client(), "test-cluster")
}

/// The emulator with its controllers (Deployments roll out, Pods run).
pub fn controllers() -> SimOptions {
    SimOptions {
        controllers: Some(ControllerOptions::default()),
        ..Default::default()
    }
}

/// A CRD of kind Widget in `group` with a closed schema (size required,
/// integer ≥ 1) and a CEL rule.
pub fn strict_widget_crd(group: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"],
                        "x-kubernetes-validations": [{"rule": "self.size < 100", "message": "too big"}],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1},
                            "port": {"x-kubernetes-int-or-string": true},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}})
}

/// Widget `w1` in `ns` with `spec`.
pub fn widget(group: &str, ns: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1", "namespace": ns}, "spec": spec})
}

/// Removes the Widget CRD of `group` (cluster-scoped: other tests'
/// namespaces do not take it with them).
pub async fn delete_crd(tc: &TestCluster, group: &str) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(tc.client());
    let _ = crds
        .delete(&format!("widgets.{group}"), &Default::default())
        .await;
}
