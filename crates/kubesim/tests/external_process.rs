//! Proves the real-cluster path of the test helper: `kubesim serve` runs as a
//! separate process and `TestCluster::external` uses it through a kubeconfig
//! file only, creating and deleting its namespace like on a real cluster.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kubesim::testing::TestCluster;
use serde_json::json;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_helper_works_against_a_separately_started_server() {
    let dir = std::env::temp_dir().join(format!("kubesim-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let _child = Child(
        Command::new(env!("CARGO_BIN_EXE_kubesim"))
            .args(["serve", "--port", "0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .spawn()
            .expect("kubesim serve starts"),
    );
    for _ in 0..400 {
        if kubeconfig.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tc = TestCluster::external(&kubeconfig, "external")
        .await
        .expect("external cluster");
    assert!(!tc.is_emulator());
    assert!(tc.require_emulator("request log").is_none());
    assert_eq!(tc.kubeconfig_path(), kubeconfig.as_path());
    let ns = tc.namespace().to_string();
    assert!(ns.starts_with("relbot-test-external-"));
    let client = tc.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    api.patch("a", &PatchParams::apply("relbot"), &Patch::Apply(&cm))
        .await
        .unwrap();
    tc.cleanup().await;
    let namespaces: Api<Namespace> = Api::all(client);
    assert!(
        namespaces.get_opt(&ns).await.unwrap().is_none(),
        "the namespace was cleaned up"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
