//! deploy/'s RBAC on a real API server, which checks every request itself
//! (the emulator does not): relbot runs with a token of deploy/'s
//! ServiceAccount (a TokenRequest), syncs the sample platform from a cluster
//! that has none of its namespaces' objects, finds it in sync, takes its
//! Lease, and cannot read the Secrets it was not granted.
//!
//! Needs a real cluster (scripts/test starts one; or RELBOT_TEST_KUBECONFIG):
//! on the emulator it says so and passes, since RBAC is not emulated.

mod ship_support;

use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use kube::discovery::pinned_kind;
use kubesim::testing::TestCluster;
use relbot::server::Metrics;
use relbot::server::lease::{LeaseElector, LeaseSettings};
use serde_json::{Value, json};
use ship_support::{deploy_objects, k3s_crds, relbot_bin, repo_root};

/// Server-side applies `object` as the cluster's admin would with kubectl.
async fn admin_apply(client: &kube::Client, object: &Value) {
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", object["apiVersion"].as_str().unwrap()),
    };
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let (resource, caps) = pinned_kind(client, &gvk).await.expect("kind served");
    let api: kube::Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            kube::Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => kube::Api::all_with(client.clone(), &resource),
    };
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(
        name,
        &PatchParams::apply("relbot-test-admin").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", object["kind"]));
}

/// A kubeconfig for the same server that authenticates with `token`.
fn kubeconfig_with_token(admin: &Path, token: &str, out: &Path) {
    let mut config = Kubeconfig::read_from(admin).expect("admin kubeconfig");
    for user in &mut config.auth_infos {
        let mut auth = user.auth_info.clone().unwrap_or_default();
        auth.token = Some(token.to_string().into());
        auth.client_certificate_data = None;
        auth.client_key_data = None;
        user.auth_info = Some(auth);
    }
    std::fs::write(out, serde_json::to_string(&config).expect("kubeconfig")).expect("write");
}

fn relbot(kubeconfig: &Path, source: &Path, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(relbot_bin())
        .args(args)
        .arg("--source")
        .arg(source)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--no-progress")
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run relbot");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The samples, copied; without the preStop `sleep` action when the server
/// does not know it (Kubernetes before 1.30, found by a dry-run probe).
fn samples_for(knows_sleep: bool, dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("manifests-sample");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("manifests-sample"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    // relbot.yaml names ../policies.
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("policies"))
        .arg(dir.join("policies"))
        .status()
        .expect("cp");
    assert!(status.success());
    if !knows_sleep {
        let file = copy.join("platform/api/deployment.yaml");
        let text = std::fs::read_to_string(&file).expect("api deployment");
        let start = text
            .find("          lifecycle:")
            .expect("a lifecycle block");
        let end =
            text[start..].find("seconds: 10\n").expect("its sleep") + start + "seconds: 10\n".len();
        std::fs::write(&file, format!("{}{}", &text[..start], &text[end..])).expect("write");
    }
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_lets_relbot_sync_the_samples_on_a_real_server_and_nothing_more() {
    relbot::tls::init();
    let tc = TestCluster::acquire("rbac-real").await;
    if tc.is_kubesim().await {
        println!(
            "skipped: RBAC is enforced only by a real API server (run scripts/test with a control plane)"
        );
        return;
    }
    let admin = tc.client();
    for object in deploy_objects().iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some(
                "Namespace"
                    | "ServiceAccount"
                    | "Role"
                    | "RoleBinding"
                    | "ClusterRole"
                    | "ClusterRoleBinding"
            )
        )
    }) {
        admin_apply(&admin, object).await;
    }
    for crd in k3s_crds() {
        let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            kube::Api::all(admin.clone());
        let _ = crds
            .create(
                &PostParams::default(),
                &serde_json::from_value(crd).unwrap(),
            )
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await; // CRDs established

    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(admin.clone(), "relbot");
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let token = accounts
        .create_token_request("relbot", &PostParams::default(), &request)
        .await
        .expect("TokenRequest for relbot/relbot")
        .status
        .expect("a token")
        .token;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("relbot.kubeconfig");
    kubeconfig_with_token(tc.kubeconfig_path(), &token, &kubeconfig);
    let samples = samples_for(tc.knows_prestop_sleep().await, dir.path());

    let (code, out) = relbot(&kubeconfig, &samples, &["sync"]);
    assert_eq!(code, 0, "relbot sync with deploy/'s ServiceAccount:\n{out}");
    let (code, out) = relbot(&kubeconfig, &samples, &["sync", "--dry-run"]);
    assert_eq!(
        code, 0,
        "a re-check right after the sync finds it in sync:\n{out}"
    );

    let sa_client = ship_support_client(&kubeconfig).await;
    let lease = LeaseElector::new(
        sa_client.clone(),
        LeaseSettings::new("relbot", "relbot-rbac-test", "rbac-test"),
        Arc::new(Metrics::new()),
    );
    assert!(
        lease
            .try_acquire_or_renew()
            .await
            .expect("the Lease in relbot's namespace")
    );
    lease.release().await.expect("release");

    // Events on the status ConfigMaps: created, then a repeat counted on the
    // same Event (`create` and `patch`), written as `relbot serve` writes them.
    let writer = relbot::server::announce::EventWriter::new(
        relbot::cluster::client::Cluster::from_client(sa_client.clone(), "sa"),
        "rbac-test",
    );
    let event = relbot::server::announce::SyncEvent {
        type_: relbot::server::announce::EventType::Warning,
        reason: "SyncFailed",
        note: format!("revision rbac-check failed in {}", tc.namespace()),
    };
    writer.publish("relbot", "rbac-test", &event).await;
    writer.publish("relbot", "rbac-test", &event).await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(admin.clone(), "relbot");
    let written: Vec<_> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.note.as_deref() == Some(event.note.as_str()))
        .collect();
    assert_eq!(
        written.len(),
        1,
        "one Event for a repeated failure: {written:?}"
    );
    assert_eq!(
        written[0].series.as_ref().map(|s| s.count),
        Some(2),
        "the repeat is counted (patch): {written:?}"
    );
    let _ = events
        .delete(
            written[0].metadata.name.as_deref().unwrap(),
            &Default::default(),
        )
        .await;

    // createNamespace, or a Namespace new in git: the apply creates it, and
    // the server checks `create` as well as `patch`.
    let fresh = format!("{}-new", tc.namespace());
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(sa_client.clone());
    namespaces
        .patch(
            &fresh,
            &PatchParams::apply("relbot").force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}}),
            ),
        )
        .await
        .expect("relbot's token creates a Namespace by server-side apply");
    let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .delete(&fresh, &Default::default())
        .await;

    let secrets: kube::Api<Secret> = kube::Api::namespaced(sa_client, "ahuora");
    let refused = secrets
        .list(&Default::default())
        .await
        .expect_err("Secrets are not granted");
    assert!(
        matches!(&refused, kube::Error::Api(s) if s.code == 403),
        "reading Secrets must be forbidden, got {refused}"
    );
    tc.cleanup().await;
}

async fn ship_support_client(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    kube::Client::try_from(config).expect("client")
}
