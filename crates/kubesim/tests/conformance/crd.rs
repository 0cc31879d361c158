use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Discovery;
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::eventually;

#[tokio::test]
async fn applying_a_crd_serves_its_kind_and_deleting_it_removes_the_kind() {
    let tc = TestCluster::acquire("crd-lifecycle").await;
    // CRDs are cluster-wide: a group unique to this test keeps parallel runs apart.
    let group = format!("{}.kubesim.test", tc.namespace());
    let name = format!("widgets.{group}");
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string"}, "port": {"type": "integer"}}}}}},
                    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}}]}
    });
    let crds: Api<CustomResourceDefinition> = Api::all(tc.client());
    crds.patch(&name, &PatchParams::apply("relbot"), &Patch::Apply(&crd))
        .await
        .unwrap();
    let established = eventually(Duration::from_secs(20), || async {
        let c = crds.get(&name).await.ok()?;
        let conds = c.status?.conditions?;
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
    assert!(established.is_some(), "CRD never Established");

    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let ar = eventually(Duration::from_secs(20), || async {
        let d = Discovery::new(tc.client()).run_aggregated().await.ok()?;
        d.resolve_gvk(&gvk).map(|(ar, _)| ar)
    })
    .await
    .expect("the new kind is discovered");
    assert_eq!(ar.plural, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(tc.client(), tc.namespace(), &ar);
    let w = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let created = widgets
        .patch("w1", &PatchParams::apply("relbot"), &Patch::Apply(&w))
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["size"], 3);
    assert_eq!(created.metadata.generation, Some(1));
    let listed = widgets.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // The schema's list-map keys drive apply merges across managers.
    let mine = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"size": 3, "ports": [{"name": "http", "port": 80}]}});
    widgets
        .patch("w1", &PatchParams::apply("relbot"), &Patch::Apply(&mine))
        .await
        .unwrap();
    let theirs = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"ports": [{"name": "metrics", "port": 9090}]}});
    let merged = widgets
        .patch("w1", &PatchParams::apply("other"), &Patch::Apply(&theirs))
        .await
        .unwrap();
    assert_eq!(
        merged.data["spec"]["ports"].as_array().unwrap().len(),
        2,
        "{}",
        merged.data
    );

    // Unknown fields: Strict rejects them, the default prunes them.
    let typo = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w2"},
        "spec": {"size": 1, "sise": 2}});
    let strict = PatchParams::apply("relbot").validation_strict();
    let e = widgets
        .patch("w2", &strict, &Patch::Apply(&typo))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = e else {
        panic!("{e:?}")
    };
    assert!(
        s.message.contains("unknown field \"spec.sise\""),
        "{}",
        s.message
    );
    let pruned = widgets
        .patch("w2", &PatchParams::apply("relbot"), &Patch::Apply(&typo))
        .await
        .unwrap();
    assert!(pruned.data["spec"].get("sise").is_none(), "{}", pruned.data);
    assert_eq!(pruned.data["spec"]["size"], 1);

    crds.delete(&name, &DeleteParams::default()).await.unwrap();
    let gone = eventually(Duration::from_secs(30), || async {
        let d = Discovery::new(tc.client()).run_aggregated().await.ok()?;
        d.resolve_gvk(&gvk).is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the kind is still served");
    let unknown = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(tc.client(), tc.namespace(), &unknown);
    assert!(widgets.get("w1").await.is_err());
    tc.cleanup().await;
}
