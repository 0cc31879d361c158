use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kubesim::testing::TestCluster;
use serde_json::{Value, json};

use crate::common::{configmap, deployment, entry, raw, status};

fn apply_path(ns: &str, plural: &str, name: &str, group_version: &str) -> String {
    let prefix = if group_version == "v1" {
        "/api/v1".to_string()
    } else {
        format!("/apis/{group_version}")
    };
    format!("{prefix}/namespaces/{ns}/{plural}/{name}")
}

#[tokio::test]
async fn apply_creates_with_201_reapplies_with_200_and_a_no_op_writes_nothing() {
    let tc = TestCluster::acquire("ssa-codes").await;
    let c = tc.client();
    let path = apply_path(tc.namespace(), "configmaps", "a", "v1");
    let url = format!("{path}?fieldManager=relbot");
    let body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n";
    let (code, first) = raw(&c, "PATCH", &url, "application/apply-patch+yaml", body).await;
    assert_eq!(code, 201, "{first}");
    let (code, second) = raw(&c, "PATCH", &url, "application/apply-patch+yaml", body).await;
    assert_eq!(code, 200);
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert_eq!(
        second["metadata"]["managedFields"],
        first["metadata"]["managedFields"]
    );
    // JSON bodies are YAML too.
    let json_body = configmap("a", json!({"k": "v"})).to_string();
    let (code, third) = raw(
        &c,
        "PATCH",
        &url,
        "application/apply-patch+yaml",
        &json_body,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        third["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    // Without a field manager, apply is invalid.
    let (code, s) = raw(&c, "PATCH", &path, "application/apply-patch+yaml", body).await;
    assert_eq!(code, 422, "{s}");
    assert_eq!(s["reason"], "Invalid");
    tc.cleanup().await;
}

#[tokio::test]
async fn managed_fields_use_the_fieldsv1_encoding() {
    let tc = TestCluster::acquire("ssa-fieldsv1").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let d = api
        .patch(
            "web",
            &PatchParams::apply("relbot"),
            &Patch::Apply(deployment("web", "nginx:1.25", Some(2))),
        )
        .await
        .unwrap();
    let v = serde_json::to_value(&d).unwrap();
    let e = entry(&v, "relbot", "Apply").expect("an Apply entry for relbot");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e["time"].is_string());
    let f = &e["fieldsV1"];
    assert_eq!(f["f:metadata"]["f:labels"]["f:app"], json!({}));
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert_eq!(f["f:metadata"]["f:labels"], json!({"f:app": {}}));
    // metav1.LabelSelector is an atomic struct.
    assert_eq!(f["f:spec"]["f:selector"], json!({}));
    let c = &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert_eq!(c["."], json!({}));
    assert_eq!(c["f:image"], json!({}));
    assert_eq!(c["f:name"], json!({}));
    let port = &c["f:ports"]["k:{\"containerPort\":8080,\"protocol\":\"TCP\"}"];
    assert_eq!(port["."], json!({}));
    assert_eq!(port["f:containerPort"], json!({}));
    // Server defaults belong to nobody.
    assert!(f["f:spec"].get("f:revisionHistoryLimit").is_none());
    assert!(c.get("f:imagePullPolicy").is_none());
    tc.cleanup().await;
}

#[tokio::test]
async fn a_field_owned_by_another_manager_conflicts_until_forced() {
    let tc = TestCluster::acquire("ssa-conflict").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    api.patch(
        "web",
        &pp,
        &Patch::Apply(deployment("web", "nginx:1.25", Some(2))),
    )
    .await
    .unwrap();
    // `kubectl scale` writes replicas through the scale subresource.
    let scale = PatchParams {
        field_manager: Some("kubectl".into()),
        ..Default::default()
    };
    api.patch_scale(
        "web",
        &scale,
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    let s = status(
        api.patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", "nginx:1.25", Some(2))),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message
            .starts_with("Apply failed with 1 conflict: conflict with \"kubectl\""),
        "{}",
        s.message
    );
    assert!(s.message.ends_with(": .spec.replicas"), "{}", s.message);
    let causes = s.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".spec.replicas");
    // The same value is not a conflict: ownership is shared.
    api.patch(
        "web",
        &pp,
        &Patch::Apply(deployment("web", "nginx:1.25", Some(3))),
    )
    .await
    .unwrap();
    // Force takes ownership.
    let d = api
        .patch(
            "web",
            &pp.clone().force(),
            &Patch::Apply(deployment("web", "nginx:1.25", Some(4))),
        )
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    let v = serde_json::to_value(&d.metadata).unwrap();
    let kubectl_owns_replicas = v["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["manager"] == "kubectl")
        .any(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_some());
    assert!(!kubectl_owns_replicas);
    // And relbot's later applies no longer conflict.
    api.patch(
        "web",
        &pp,
        &Patch::Apply(deployment("web", "nginx:1.25", Some(5))),
    )
    .await
    .unwrap();
    tc.cleanup().await;
}

#[tokio::test]
async fn fields_dropped_from_the_apply_config_are_removed_unless_shared() {
    let tc = TestCluster::acquire("ssa-removal").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    api.patch(
        "a",
        &pp,
        &Patch::Apply(configmap(
            "a",
            json!({"mine": "1", "shared": "2", "gone": "3"}),
        )),
    )
    .await
    .unwrap();
    api.patch(
        "a",
        &PatchParams::apply("other"),
        &Patch::Apply(configmap("a", json!({"shared": "2"}))),
    )
    .await
    .unwrap();
    let cm = api
        .patch(
            "a",
            &pp,
            &Patch::Apply(configmap("a", json!({"mine": "1"}))),
        )
        .await
        .unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data.get("mine").map(String::as_str), Some("1"));
    assert_eq!(
        data.get("shared").map(String::as_str),
        Some("2"),
        "still owned by another manager"
    );
    assert!(!data.contains_key("gone"), "owned by nobody any more");
    tc.cleanup().await;
}

#[tokio::test]
async fn associative_lists_merge_by_key_across_managers() {
    let tc = TestCluster::acquire("ssa-listmaps").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let mut base = deployment("web", "nginx:1.25", Some(1));
    base["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    base["spec"]["template"]["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    api.patch("web", &PatchParams::apply("relbot"), &Patch::Apply(&base))
        .await
        .unwrap();
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {
            "containers": [
                {"name": "app", "env": [{"name": "B", "value": "2"}], "ports": [{"containerPort": 9090}]},
                {"name": "sidecar", "image": "busybox:1.36"}],
            "volumes": [{"name": "cache", "emptyDir": {}}]}}}});
    let d = api
        .patch(
            "web",
            &PatchParams::apply("injector"),
            &Patch::Apply(&sidecar),
        )
        .await
        .unwrap();
    let v: Value = serde_json::to_value(&d).unwrap();
    let pod = &v["spec"]["template"]["spec"];
    let names: Vec<&str> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"app") && names.contains(&"sidecar"));
    let app = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .unwrap();
    assert_eq!(app["image"], "nginx:1.25");
    let env: Vec<&str> = app["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env.len(), 2);
    let ports: Vec<i64> = app["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(pod["volumes"].as_array().unwrap().len(), 2);
    tc.cleanup().await;
}

#[tokio::test]
async fn dry_run_apply_returns_the_would_be_object_and_stores_nothing() {
    let tc = TestCluster::acquire("ssa-dryrun").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let dry = PatchParams::apply("relbot").dry_run();
    let would = api
        .patch("a", &dry, &Patch::Apply(configmap("a", json!({"k": "v"}))))
        .await
        .unwrap();
    assert_eq!(would.data.unwrap()["k"], "v");
    assert!(api.get_opt("a").await.unwrap().is_none());
    let live = api
        .patch(
            "a",
            &PatchParams::apply("relbot"),
            &Patch::Apply(configmap("a", json!({"k": "v"}))),
        )
        .await
        .unwrap();
    let would = api
        .patch("a", &dry, &Patch::Apply(configmap("a", json!({"k": "w"}))))
        .await
        .unwrap();
    assert_eq!(would.data.unwrap()["k"], "w");
    let after = api.get("a").await.unwrap();
    assert_eq!(after.data.unwrap()["k"], "v");
    assert_eq!(
        after.metadata.resource_version,
        live.metadata.resource_version
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn non_apply_writes_record_update_entries() {
    let tc = TestCluster::acquire("ssa-update-entries").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    api.patch(
        "a",
        &PatchParams::apply("relbot"),
        &Patch::Apply(configmap("a", json!({"k": "v"}))),
    )
    .await
    .unwrap();
    let pp = PatchParams {
        field_manager: Some("editor".into()),
        ..Default::default()
    };
    let cm = api
        .patch("a", &pp, &Patch::Merge(json!({"data": {"k": "edited"}})))
        .await
        .unwrap();
    let v = serde_json::to_value(&cm).unwrap();
    let e = entry(&v, "editor", "Update").expect("an Update entry for editor");
    assert_eq!(e["fieldsV1"]["f:data"]["f:k"], json!({}));
    // Maps an update creates are owned with their `.` marker.
    let cm = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"annotations": {"note": "x"}}})),
        )
        .await
        .unwrap();
    let v = serde_json::to_value(&cm).unwrap();
    let e = entry(&v, "editor", "Update").unwrap();
    assert_eq!(
        e["fieldsV1"]["f:metadata"]["f:annotations"],
        json!({".": {}, "f:note": {}})
    );
    // The editor took the field: relbot's next apply of a different value conflicts.
    let s = status(
        api.patch(
            "a",
            &PatchParams::apply("relbot"),
            &Patch::Apply(configmap("a", json!({"k": "v"}))),
        )
        .await,
    );
    assert_eq!(s.code, 409);
    assert!(
        s.message.contains("conflict with \"editor\""),
        "{}",
        s.message
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn a_container_dropped_from_the_apply_config_is_removed() {
    let tc = TestCluster::acquire("ssa-drop-container").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    let mut two = deployment("web", "nginx:1.25", Some(1));
    two["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox:1.36"}));
    api.patch("web", &pp, &Patch::Apply(&two)).await.unwrap();
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", "nginx:1.25", Some(1))),
        )
        .await
        .unwrap();
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "app");
    // Labels work the same way.
    let mut labelled = deployment("web", "nginx:1.25", Some(1));
    labelled["metadata"]["labels"]["extra"] = json!("yes");
    let d = api
        .patch("web", &pp, &Patch::Apply(&labelled))
        .await
        .unwrap();
    assert_eq!(d.metadata.labels.unwrap()["extra"], "yes");
    let d = api
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", "nginx:1.25", Some(1))),
        )
        .await
        .unwrap();
    assert!(!d.metadata.labels.unwrap().contains_key("extra"));
    tc.cleanup().await;
}

#[tokio::test]
async fn apply_refuses_duplicate_keys_in_a_keyed_list_that_a_create_keeps() {
    let tc = TestCluster::acquire("ssa-duplicates").await;
    let c = tc.client();
    let ns = tc.namespace();
    let mut body = deployment("dup", "nginx", Some(1));
    body["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}]);
    body["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]);
    let path = apply_path(ns, "deployments", "dup", "apps/v1");
    let url = format!("{path}?fieldManager=relbot&dryRun=All&fieldValidation=Strict");
    let (code, s) = raw(
        &c,
        "PATCH",
        &url,
        "application/apply-patch+yaml",
        &body.to_string(),
    )
    .await;
    assert_eq!(code, 500, "{s}");
    let container = body["spec"]["template"]["spec"]["containers"][0]["name"]
        .as_str()
        .expect("a container name");
    // Named from the configuration, which names no namespace; one line per
    // list, in an order the real server does not fix.
    let message = s["message"].as_str().unwrap_or_default();
    let (head, errors) = message.split_once('\n').unwrap_or_default();
    assert_eq!(
        head,
        "failed to create typed patch object (/dup; apps/v1, Kind=Deployment): errors:"
    );
    let mut errors: Vec<&str> = errors.lines().collect();
    errors.sort_unstable();
    let at = format!(".spec.template.spec.containers[name=\"{container}\"]");
    assert_eq!(
        errors,
        [
            format!("  {at}.env: duplicate entries for key [name=\"A\"]"),
            format!("  {at}.ports: duplicate entries for key [containerPort=80,protocol=\"TCP\"]"),
        ]
    );
    // A create takes the same object, warning about both lists.
    let create = format!(
        "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=relbot&dryRun=All&fieldValidation=Strict"
    );
    let reply =
        crate::common::raw_text(&c, "POST", &create, "application/json", &body.to_string()).await;
    assert_eq!(reply.code, 201, "{}", reply.body);
    tc.cleanup().await;
}
