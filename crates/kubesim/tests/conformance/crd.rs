use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Discovery;
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::{eventually, raw, status};

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

    // Unknown fields: an apply is a plain 500 whatever fieldValidation says
    // (kubernetes#122480); a create honours it (Strict 400, default prunes).
    let typo = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w2"},
        "spec": {"size": 1, "sise": 2}});
    let pp = PatchParams::apply("relbot");
    for pp in [pp.clone(), pp.clone().validation_strict()] {
        let s = status(widgets.patch("w2", &pp, &Patch::Apply(&typo)).await);
        assert_eq!((s.code, s.reason.as_str()), (500, ""));
        assert_eq!(
            s.message,
            format!(
                "failed to create typed patch object (/w2; {group}/v1, Kind=Widget): .spec.sise: field not declared in schema"
            )
        );
    }
    let path = format!("/apis/{group}/v1/namespaces/{}/widgets", tc.namespace());
    let (code, body) = raw(
        &tc.client(),
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        &typo.to_string(),
    )
    .await;
    assert_eq!(
        (code, &body["reason"]),
        (400, &json!("BadRequest")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.sise\""
    );
    let (code, pruned) = raw(
        &tc.client(),
        "POST",
        &path,
        "application/json",
        &typo.to_string(),
    )
    .await;
    assert_eq!(code, 201, "{pruned}");
    assert!(pruned["spec"].get("sise").is_none(), "{pruned}");
    assert_eq!(pruned["spec"]["size"], 1);

    crds.delete(&name, &DeleteParams::default()).await.unwrap();
    let gone = eventually(Duration::from_secs(30), || async {
        let d = Discovery::new(tc.client()).run_aggregated().await.ok()?;
        d.resolve_gvk(&gvk).is_none().then_some(())
    })
    .await;
    assert!(gone.is_some(), "the kind is still served");
    let unknown = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(tc.client(), tc.namespace(), &unknown);
    // The group is served no more: Go's plain 404, not a Status.
    let s = status(widgets.get("w1").await);
    assert_eq!((s.code, s.message.as_str()), (404, "404 page not found"));
    tc.cleanup().await;
}
