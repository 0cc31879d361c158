use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kubesim::testing::TestCluster;

#[tokio::test]
async fn smoke() {
    let tc = TestCluster::acquire("smoke").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    let r = api
        .patch("a", &PatchParams::apply("relbot"), &Patch::Apply(&cm))
        .await
        .unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    let l = api.list(&Default::default()).await.unwrap();
    assert_eq!(l.items.len(), 1);
    let d = kube::Discovery::new(tc.client())
        .run_aggregated()
        .await
        .unwrap();
    assert!(d.has_group("apps"));
    let d = kube::Discovery::new(tc.client()).run().await.unwrap();
    assert!(d.has_group("apps"));
    tc.cleanup().await;
}
