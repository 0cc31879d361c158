use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::{deployment, status};

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields() {
    let tc = TestCluster::acquire("val-strict").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let mut d = deployment("web", "nginx:1.25", Some(1));
    d["spec"]["replicaz"] = json!(3);
    let pp = PatchParams::apply("relbot").validation_strict();
    let s = status(api.patch("web", &pp, &Patch::Apply(&d)).await);
    assert_eq!(s.code, 400, "{}", s.message);
    assert_eq!(s.reason, "BadRequest");
    assert!(
        s.message.contains("unknown field \"spec.replicaz\""),
        "{}",
        s.message
    );
    let s = status(api.patch("web", &pp.dry_run(), &Patch::Apply(&d)).await);
    assert_eq!(s.code, 400);
    tc.cleanup().await;
}

#[tokio::test]
async fn immutable_fields_are_invalid() {
    let tc = TestCluster::acquire("val-immutable").await;
    let ns = tc.namespace();
    let pp = PatchParams::apply("relbot").force();

    let deploys: Api<Deployment> = Api::namespaced(tc.client(), ns);
    deploys
        .patch(
            "web",
            &pp,
            &Patch::Apply(deployment("web", "nginx:1.25", Some(1))),
        )
        .await
        .unwrap();
    let mut changed = deployment("web", "nginx:1.25", Some(1));
    changed["spec"]["selector"]["matchLabels"]["extra"] = json!("x");
    changed["spec"]["template"]["metadata"]["labels"]["extra"] = json!("x");
    let s = status(deploys.patch("web", &pp, &Patch::Apply(&changed)).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("spec.selector"), "{}", s.message);
    assert!(s.message.contains("field is immutable"), "{}", s.message);

    let services: Api<Service> = Api::namespaced(tc.client(), ns);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    let created = services
        .patch("web", &pp, &Patch::Apply(&svc))
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    let ip = spec.cluster_ip.clone().unwrap();
    assert_eq!(spec.cluster_ips.unwrap()[0], ip);
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    let mut moved = svc.clone();
    let other = if ip.ends_with(".200") {
        ip.replace(".200", ".201")
    } else {
        let (head, _) = ip.rsplit_once('.').unwrap();
        format!("{head}.200")
    };
    moved["spec"]["clusterIP"] = json!(other);
    let s = status(services.patch("web", &pp, &Patch::Apply(&moved)).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));

    let jobs: Api<Job> = Api::namespaced(tc.client(), ns);
    let job = |image: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": image}]}}}})
    };
    jobs.patch("once", &pp, &Patch::Apply(job("busybox:1.36")))
        .await
        .unwrap();
    let s = status(
        jobs.patch("once", &pp, &Patch::Apply(job("busybox:1.37")))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("spec.template"), "{}", s.message);

    let sets: Api<StatefulSet> = Api::namespaced(tc.client(), ns);
    let sts = |size: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}}}}]}})
    };
    sets.patch("db", &pp, &Patch::Apply(sts("1Gi")))
        .await
        .unwrap();
    let s = status(sets.patch("db", &pp, &Patch::Apply(sts("2Gi"))).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("Forbidden"), "{}", s.message);
    tc.cleanup().await;
}

#[tokio::test]
async fn headless_services_get_no_cluster_ip() {
    let tc = TestCluster::acquire("val-headless").await;
    let services: Api<Service> = Api::namespaced(tc.client(), tc.namespace());
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"},
        "spec": {"clusterIP": "None", "selector": {"app": "h"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    let s = services
        .patch("h", &PatchParams::apply("relbot"), &Patch::Apply(&svc))
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    tc.cleanup().await;
}

/// kube-apiserver refuses a ConfigMap whose data passes 1 MiB (dry-run too).
#[tokio::test]
async fn configmap_data_over_one_mebibyte_is_invalid() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let tc = TestCluster::acquire("val-cm-size").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let body = |bytes: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
            "data": {"blob": "x".repeat(bytes)}})
    };
    let pp = PatchParams::apply("relbot");
    let s = status(
        api.patch(
            "big",
            &pp.clone().dry_run(),
            &Patch::Apply(body(1024 * 1024 + 1)),
        )
        .await,
    );
    assert_eq!(s.code, 422, "{}", s.message);
    assert!(
        s.message.contains("must have at most 1048576 bytes"),
        "{}",
        s.message
    );
    api.patch("big", &pp, &Patch::Apply(body(1000 * 1000)))
        .await
        .expect("just under the limit is fine");
    tc.cleanup().await;
}
