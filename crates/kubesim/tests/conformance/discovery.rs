use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope, verbs};
use kubesim::testing::TestCluster;

use crate::common::{raw, raw_text};

const KINDS: &[(&str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", false),
    ("", "v1", "ConfigMap", true),
    ("", "v1", "Secret", true),
    ("", "v1", "Service", true),
    ("", "v1", "ServiceAccount", true),
    ("", "v1", "PersistentVolumeClaim", true),
    ("", "v1", "Pod", true),
    ("", "v1", "Event", true),
    ("apps", "v1", "Deployment", true),
    ("apps", "v1", "StatefulSet", true),
    ("apps", "v1", "DaemonSet", true),
    ("batch", "v1", "Job", true),
    ("batch", "v1", "CronJob", true),
    ("networking.k8s.io", "v1", "Ingress", true),
    ("networking.k8s.io", "v1", "IngressClass", false),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", true),
    ("policy", "v1", "PodDisruptionBudget", true),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", true),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        false,
    ),
    ("coordination.k8s.io", "v1", "Lease", true),
];

fn check(d: &Discovery) {
    for (g, v, k, namespaced) in KINDS {
        let gvk = GroupVersionKind::gvk(g, v, k);
        let (ar, caps) = d
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} not discovered"));
        assert_eq!(ar.kind, *k);
        let want = if *namespaced {
            Scope::Namespaced
        } else {
            Scope::Cluster
        };
        assert_eq!(caps.scope, want, "scope of {k}");
        for verb in [
            verbs::GET,
            verbs::LIST,
            verbs::WATCH,
            verbs::CREATE,
            verbs::PATCH,
            verbs::DELETE,
        ] {
            assert!(caps.supports_operation(verb), "{k} supports {verb}");
        }
    }
}

#[tokio::test]
async fn aggregated_discovery_lists_every_kind_with_scope_and_verbs() {
    let tc = TestCluster::acquire("disc-aggregated").await;
    let d = Discovery::new(tc.client()).run_aggregated().await.unwrap();
    check(&d);
    tc.cleanup().await;
}

#[tokio::test]
async fn per_group_discovery_lists_every_kind_with_scope_and_verbs() {
    let tc = TestCluster::acquire("disc-groups").await;
    let d = Discovery::new(tc.client()).run().await.unwrap();
    check(&d);
    let deploy = GroupVersionKind::gvk("apps", "v1", "Deployment");
    let (_, caps) = d.resolve_gvk(&deploy).unwrap();
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "deployments/status" || r.plural == "status")
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn version_and_raw_documents() {
    let tc = TestCluster::acquire("disc-raw").await;
    let c = tc.client();
    let v = c.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let (code, api) = raw(&c, "GET", "/api", "application/json", "").await;
    assert_eq!(code, 200);
    assert_eq!(api["kind"], "APIVersions");
    let (_, core) = raw(&c, "GET", "/api/v1", "application/json", "").await;
    assert_eq!(core["kind"], "APIResourceList");
    let cm = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "configmaps")
        .unwrap();
    assert_eq!(cm["namespaced"], true);
    let (_, apps) = raw(&c, "GET", "/apis/apps", "application/json", "").await;
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(apps["preferredVersion"]["version"], "v1");
    // A group nobody serves has no handler at all: Go's plain-text 404.
    for path in [
        "/apis/nope.example.com",
        "/apis/nope.example.com/v1",
        "/apis/nope.example.com/v1/namespaces/default/widgets/w",
    ] {
        let r = raw_text(&c, "GET", path, "application/json", "").await;
        assert_eq!(
            (r.code, r.content_type.as_str(), r.body.as_str()),
            (404, "text/plain; charset=utf-8", "404 page not found\n"),
            "{path}"
        );
    }
    // Under a served group, what is missing is a NotFound Status.
    for path in ["/apis/apps/v9", "/apis/apps/v1/nopes", "/api/v2"] {
        let (code, missing) = raw(&c, "GET", path, "application/json", "").await;
        assert_eq!(code, 404, "{path}");
        assert_eq!(missing["kind"], "Status", "{path}");
        assert_eq!(missing["reason"], "NotFound", "{path}");
        assert_eq!(
            missing["message"], "the server could not find the requested resource",
            "{path}"
        );
    }
    tc.cleanup().await;
}
