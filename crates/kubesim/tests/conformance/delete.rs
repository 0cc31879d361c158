use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::{configmap, status};

async fn make(api: &Api<ConfigMap>, name: &str, extra: serde_json::Value) -> ConfigMap {
    let mut v = configmap(name, json!({"k": "v"}));
    if let Some(f) = extra.get("finalizers") {
        v["metadata"]["finalizers"] = f.clone();
    }
    let cm: ConfigMap = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap()
}

#[tokio::test]
async fn delete_removes_and_accepts_every_propagation_policy() {
    let tc = TestCluster::acquire("del-policies").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    for (name, dp) in [
        ("bg", DeleteParams::background()),
        ("fg", DeleteParams::foreground()),
        ("orphan", DeleteParams::orphan()),
    ] {
        make(&api, name, json!({})).await;
        api.delete(name, &dp).await.unwrap();
        // Foreground deletion waits for the garbage collector, which on a
        // control plane that has just started may still be syncing its caches.
        let gone = crate::common::eventually(std::time::Duration::from_secs(60), || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
        assert!(gone.is_some(), "{name} still present");
    }
    let s = status(api.delete("never", &DeleteParams::default()).await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    tc.cleanup().await;
}

#[tokio::test]
async fn delete_preconditions_on_uid_and_resource_version() {
    let tc = TestCluster::acquire("del-preconditions").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cm = make(&api, "a", json!({})).await;
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    // rest.BeforeDelete names the object by its Kind, not its resource.
    let uid = cm.metadata.uid.clone().unwrap();
    let rv = cm.metadata.resource_version.clone().unwrap();
    let s = status(api.delete("a", &wrong_uid).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"a\": the UID in the precondition (00000000-0000-0000-0000-000000000000) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )
    );
    let details = s.details.expect("details");
    assert_eq!(
        (
            details.kind.as_str(),
            details.name.as_str(),
            details.group.as_str()
        ),
        ("ConfigMap", "a", "")
    );
    let wrong_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        }),
        ..Default::default()
    };
    let s = status(api.delete("a", &wrong_rv).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        format!(
            "Operation cannot be fulfilled on ConfigMap \"a\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv}). The object might have been modified"
        )
    );
    assert!(api.get_opt("a").await.unwrap().is_some());
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.metadata.uid.clone(),
            resource_version: cm.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    api.delete("a", &right).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    tc.cleanup().await;
}

#[tokio::test]
async fn finalizers_keep_the_object_until_removed() {
    let tc = TestCluster::acquire("del-finalizers").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    make(&api, "a", json!({"finalizers": ["relbot.dev/test"]})).await;
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let held = api.get("a").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let p = json!({"metadata": {"finalizers": null}});
    api.patch("a", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    let gone = crate::common::eventually(std::time::Duration::from_secs(10), || async {
        api.get_opt("a").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(gone.is_some());
    tc.cleanup().await;
}

#[tokio::test]
async fn dry_run_delete_keeps_the_object() {
    let tc = TestCluster::acquire("del-dryrun").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    make(&api, "a", json!({})).await;
    api.delete(
        "a",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(api.get_opt("a").await.unwrap().is_some());
    tc.cleanup().await;
}
