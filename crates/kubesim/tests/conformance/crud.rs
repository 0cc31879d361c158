use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::{configmap, deployment, status};

#[tokio::test]
async fn create_sets_server_fields_and_duplicates_are_already_exists() {
    let tc = TestCluster::acquire("crud-create").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cm: ConfigMap = serde_json::from_value(configmap("a", json!({"k": "v"}))).unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let m = &created.metadata;
    assert!(m.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(m.creation_timestamp.is_some());
    assert!(m.resource_version.is_some());
    assert_eq!(m.namespace.as_deref(), Some(tc.namespace()));
    let s = status(api.create(&PostParams::default(), &cm).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(s.message, "configmaps \"a\" already exists");
    let got = api.get("a").await.unwrap();
    assert_eq!(got.metadata.uid, m.uid);
    tc.cleanup().await;
}

#[tokio::test]
async fn update_with_stale_resource_version_is_a_conflict() {
    let tc = TestCluster::acquire("crud-update").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cm: ConfigMap = serde_json::from_value(configmap("a", json!({"k": "v"}))).unwrap();
    let first = api.create(&PostParams::default(), &cm).await.unwrap();
    let mut fresh = first.clone();
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let second = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    let mut stale = first.clone();
    stale.data = Some([("k".to_string(), "x".to_string())].into());
    let s = status(api.replace("a", &PostParams::default(), &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn missing_objects_and_namespaces_are_not_found() {
    let tc = TestCluster::acquire("crud-notfound").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let s = status(api.get("nope").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "configmaps \"nope\" not found");
    let ghost = format!("{}-gone", tc.namespace());
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), &ghost);
    let cm: ConfigMap = serde_json::from_value(configmap("a", json!({}))).unwrap();
    let s = status(api.create(&PostParams::default(), &cm).await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, format!("namespaces \"{ghost}\" not found"));
    let s = status(
        api.patch(
            "a",
            &PatchParams::apply("relbot"),
            &Patch::Apply(configmap("a", json!({}))),
        )
        .await,
    );
    assert_eq!(s.code, 404);
    assert_eq!(s.message, format!("namespaces \"{ghost}\" not found"));
    tc.cleanup().await;
}

#[tokio::test]
async fn merge_patch_changes_and_removes_fields() {
    let tc = TestCluster::acquire("crud-merge").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cm: ConfigMap =
        serde_json::from_value(configmap("a", json!({"k": "v", "drop": "me"}))).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let p = json!({"metadata": {"labels": {"x": "y"}}, "data": {"k": "w", "drop": null}});
    let got = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    let data = got.data.unwrap();
    assert_eq!(data.get("k").map(String::as_str), Some("w"));
    assert!(!data.contains_key("drop"));
    assert_eq!(got.metadata.labels.unwrap()["x"], "y");
    tc.cleanup().await;
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let tc = TestCluster::acquire("crud-generation").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", "nginx:1.25", Some(1))),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let labels = json!({"metadata": {"labels": {"team": "a"}}});
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", "nginx:1.26", Some(1))),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    tc.cleanup().await;
}

#[tokio::test]
async fn status_subresource_is_separate_from_the_main_resource() {
    let tc = TestCluster::acquire("crud-status").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    api.patch(
        "web",
        &PatchParams::apply("relbot"),
        &Patch::Apply(deployment("web", "nginx:1.25", Some(1))),
    )
    .await
    .unwrap();
    // A status written through the main resource is ignored.
    let p = json!({"spec": {"replicas": 2}, "status": {"observedGeneration": 99}});
    let d = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
    assert_ne!(d.status.and_then(|s| s.observed_generation), Some(99));
    // And spec written through the status subresource is ignored.
    let p = json!({"spec": {"replicas": 5}, "status": {"observedGeneration": 42}});
    let d = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
    assert_eq!(d.status.unwrap().observed_generation, Some(42));
    tc.cleanup().await;
}

#[tokio::test]
async fn defaults_are_filled_in() {
    let tc = TestCluster::acquire("crud-defaults").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let d = api
        .patch(
            "web",
            &PatchParams::apply("relbot"),
            &Patch::Apply(deployment("web", "nginx:1.25", None)),
        )
        .await
        .unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    assert_eq!(
        spec.strategy.unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );
    // Numbers and non-canonical text on purpose; requests stay within limits
    // (validation::a_request_above_its_limit_is_invalid covers the other case).
    let mut with_resources = deployment("web", "nginx:1.25", None);
    with_resources["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": 1, "memory": "1024Mi"}, "limits": {"cpu": 1.5}});
    let d = api
        .patch(
            "web",
            &PatchParams::apply("relbot"),
            &Patch::Apply(&with_resources),
        )
        .await
        .unwrap();
    let r = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .resources
        .clone()
        .unwrap();
    let requests = r.requests.unwrap();
    assert_eq!(
        requests["cpu"].0, "1",
        "numeric quantities come back as strings"
    );
    assert_eq!(
        requests["memory"].0, "1Gi",
        "quantities are stored canonically"
    );
    assert_eq!(r.limits.unwrap()["cpu"].0, "1500m");
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        c.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(
        c.ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn lease_updates_are_optimistic() {
    use k8s_openapi::api::coordination::v1::Lease;
    let tc = TestCluster::acquire("crud-lease").await;
    let api: Api<Lease> = Api::namespaced(tc.client(), tc.namespace());
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "relbot"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .unwrap();
    let held = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut by_b = held.clone();
    by_b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let mut by_c = held.clone();
    by_c.spec.as_mut().unwrap().holder_identity = Some("c".into());
    api.replace("relbot", &PostParams::default(), &by_b)
        .await
        .unwrap();
    let s = status(api.replace("relbot", &PostParams::default(), &by_c).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    let now = api.get("relbot").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
    tc.cleanup().await;
}

#[tokio::test]
async fn events_are_served_in_both_groups() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let tc = TestCluster::acquire("crud-events").await;
    let api: Api<Event> = Api::namespaced(tc.client(), tc.namespace());
    let ev: Event = serde_json::from_value(json!({"metadata": {"generateName": "relbot-"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "relbot.dev/relbot",
        "reportingInstance": "relbot-0", "action": "Sync", "reason": "Synced", "type": "Normal",
        "regarding": {"kind": "ConfigMap", "name": "a", "namespace": tc.namespace(), "apiVersion": "v1"},
        "note": "synced"}))
    .unwrap();
    let created = api.create(&PostParams::default(), &ev).await.unwrap();
    assert!(created.metadata.name.unwrap().starts_with("relbot-"));
    let core: Api<CoreEvent> = Api::namespaced(tc.client(), tc.namespace());
    assert!(core.list(&Default::default()).await.is_ok());
    tc.cleanup().await;
}

#[tokio::test]
async fn secrets_json_patches_and_delete_collection() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{DeleteParams, ListParams};
    let tc = TestCluster::acquire("crud-misc").await;
    let secrets: Api<Secret> = Api::namespaced(tc.client(), tc.namespace());
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"user": "relbot"}});
    let created = secrets
        .patch("s", &PatchParams::apply("relbot"), &Patch::Apply(&s))
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.data.unwrap()["user"].0, b"relbot");
    assert!(created.string_data.is_none());

    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    for name in ["a", "b"] {
        let mut cm = configmap(name, json!({"k": "v"}));
        cm["metadata"]["labels"] = json!({"group": "doomed"});
        api.patch(name, &PatchParams::apply("relbot"), &Patch::Apply(cm))
            .await
            .unwrap();
    }
    let ops = json!([
        {"op": "replace", "path": "/data/k", "value": "w"},
        {"op": "add", "path": "/data/n", "value": "1"}]);
    let path = format!("/api/v1/namespaces/{}/configmaps/a", tc.namespace());
    let (code, patched) = crate::common::raw(
        &tc.client(),
        "PATCH",
        &path,
        "application/json-patch+json",
        &ops.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(
        (patched["data"]["k"].as_str(), patched["data"]["n"].as_str()),
        (Some("w"), Some("1"))
    );

    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("group=doomed"),
    )
    .await
    .unwrap();
    let left = crate::common::eventually(std::time::Duration::from_secs(10), || async {
        let l = api
            .list(&ListParams::default().labels("group=doomed"))
            .await
            .ok()?;
        l.items.is_empty().then_some(())
    })
    .await;
    assert!(left.is_some());
    tc.cleanup().await;
}
