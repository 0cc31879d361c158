use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::{configmap, deployment, raw, raw_text, server_minor, status};

/// Server-side apply types its configuration against the schema before it
/// looks at fieldValidation, so an undeclared field is a plain 500 (no reason)
/// whatever fieldValidation says (kubernetes#122480, 1.28 and 1.32 alike).
/// A create honours fieldValidation: Strict refuses with 400, the default
/// (Warn) drops the field and says so in a warning.
#[tokio::test]
async fn unknown_fields_fail_an_apply_with_500_and_a_strict_create_with_400() {
    let tc = TestCluster::acquire("val-strict").await;
    let c = tc.client();
    let ns = tc.namespace();
    let api: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let mut d = deployment("web", "nginx:1.25", Some(1));
    d["spec"]["replicaz"] = json!(3);
    let want = "failed to create typed patch object (/web; apps/v1, Kind=Deployment): .spec.replicaz: field not declared in schema";
    let pp = PatchParams::apply("relbot");
    for (how, pp) in [
        ("default", pp.clone()),
        ("Strict", pp.clone().validation_strict()),
        ("Warn", pp.clone().validation_warn()),
        ("Ignore", pp.clone().validation_ignore()),
        ("Strict dry-run", pp.clone().validation_strict().dry_run()),
    ] {
        let s = status(api.patch("web", &pp, &Patch::Apply(&d)).await);
        assert_eq!(
            (s.code, s.reason.as_str(), s.message.as_str()),
            (500, "", want),
            "{how}"
        );
    }
    assert!(api.get_opt("web").await.unwrap().is_none());

    // Inside list items the path names each item by its keys, defaults included.
    let mut nested = deployment("web", "nginx:1.25", Some(1));
    nested["spec"]["template"]["spec"]["containers"][0]["ports"][0]["foo"] = json!(1);
    let s = status(api.patch("web", &pp, &Patch::Apply(&nested)).await);
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        "failed to create typed patch object (/web; apps/v1, Kind=Deployment): .spec.template.spec.containers[name=\"app\"].ports[containerPort=8080,protocol=\"TCP\"].foo: field not declared in schema"
    );

    // The core group prints empty; a namespace in the configuration shows.
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let mut cm = configmap("c", json!({"k": "v"}));
    cm["metadata"]["namespace"] = json!(ns);
    cm["extra"] = json!(1);
    let s = status(cms.patch("c", &pp, &Patch::Apply(&cm)).await);
    assert_eq!(s.code, 500);
    assert_eq!(
        s.message,
        format!(
            "failed to create typed patch object ({ns}/c; /v1, Kind=ConfigMap): .extra: field not declared in schema"
        )
    );

    let path = format!("/apis/apps/v1/namespaces/{ns}/deployments");
    let (code, body) = raw(
        &c,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        &d.to_string(),
    )
    .await;
    assert_eq!(
        (code, &body["reason"]),
        (400, &json!("BadRequest")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\""
    );
    let r = raw_text(&c, "POST", &path, "application/json", &d.to_string()).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(r#"unknown field \"spec.replicaz\""#)),
        "{:?}",
        r.warnings
    );
    let created: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(created["spec"].get("replicaz").is_none(), "{created}");
    assert_eq!(created["spec"]["replicas"], 1);
    tc.cleanup().await;
}

/// kube-apiserver's ValidateResourceRequirements: a request may not pass its
/// limit; the message prints both quantities canonically.
#[tokio::test]
async fn a_request_above_its_limit_is_invalid() {
    let tc = TestCluster::acquire("val-request-limit").await;
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let with = |resources: serde_json::Value| {
        let mut d = deployment("web", "nginx:1.25", Some(1));
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = resources;
        d
    };
    let pp = PatchParams::apply("relbot");
    let over = with(json!({"requests": {"cpu": 1}, "limits": {"cpu": 0.5}}));
    for pp in [pp.clone().dry_run(), pp.clone()] {
        let s = status(api.patch("web", &pp, &Patch::Apply(&over)).await);
        assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
        assert_eq!(
            s.message,
            "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"
        );
        let details = s.details.expect("details");
        assert_eq!(
            (details.kind.as_str(), details.group.as_str()),
            ("Deployment", "apps")
        );
        let cause = &details.causes[0];
        assert_eq!(cause.reason, "FieldValueInvalid");
        assert_eq!(
            cause.field,
            "spec.template.spec.containers[0].resources.requests"
        );
    }
    assert!(api.get_opt("web").await.unwrap().is_none());
    // Equal in value (not in text) is within the limit.
    let equal = with(json!({"requests": {"memory": "1024Mi"}, "limits": {"memory": "1Gi"}}));
    let d = api.patch("web", &pp, &Patch::Apply(&equal)).await.unwrap();
    let resources = d.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(resources.requests.unwrap()["memory"].0, "1Gi");
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
    // field.TooLong's wording changed in 1.32 (the emulator speaks as 1.33).
    let too_long = if server_minor(&tc.client()).await >= 32 {
        "Too long: may not be more than 1048576 bytes"
    } else {
        "Too long: must have at most 1048576 bytes"
    };
    assert_eq!(
        s.message,
        format!("ConfigMap \"big\" is invalid: []: {too_long}")
    );
    let cause = &s.details.expect("details").causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.field.as_str(),
            cause.message.as_str()
        ),
        ("FieldValueTooLong", "[]", too_long)
    );
    api.patch("big", &pp, &Patch::Apply(body(1000 * 1000)))
        .await
        .expect("just under the limit is fine");
    tc.cleanup().await;
}

/// A dry-run runs without the Service allocators: a node port outside the
/// range passes `dryRun=All` (apply and create alike) and only the write is
/// refused. relbot writes such Services first in their wave for this reason.
#[tokio::test]
async fn a_node_port_out_of_range_passes_the_dry_run_and_fails_the_write() {
    let tc = TestCluster::acquire("val-nodeport").await;
    let services: Api<Service> = Api::namespaced(tc.client(), tc.namespace());
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "selector": {"app": "np"},
            "ports": [{"port": 80, "nodePort": 99}]}});
    let pp = PatchParams::apply("relbot").force();
    services
        .patch("np", &pp.clone().dry_run(), &Patch::Apply(&svc))
        .await
        .expect("the dry-run does not allocate, so it passes");
    let s = status(services.patch("np", &pp, &Patch::Apply(&svc)).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            422,
            "Service \"np\" is invalid: spec.ports[0].nodePort: Invalid value: 99: provided port is not in the valid range. The range of valid ports is 30000-32767"
        )
    );
    assert!(services.get_opt("np").await.unwrap().is_none());
    tc.cleanup().await;
}
