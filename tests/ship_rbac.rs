//! The RBAC in `deploy/` against what relbot is seen to do: relbot's own
//! code runs against the API-server emulator, every request in the
//! emulator's log is mapped to the (verb, group, resource, namespace) the
//! API server would authorise, and each must be granted to ServiceAccount
//! relbot/relbot by deploy/rbac.yaml. Cluster-wide grants are held to what
//! the log needs.
//!
//! What runs against the emulator here: the leader-election Lease
//! (`server::lease`, as `relbot serve` uses it), and `relbot sync` of the
//! sample platform followed by a `relbot sync --dry-run`, through the CLI,
//! against an emulated K3s (workload controllers, Traefik's and the Helm
//! controller's CRDs).

mod ship_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kubesim::{KubeSim, RequestRecord, SimOptions};
use relbot::server::Metrics;
use relbot::server::lease::{LeaseElector, LeaseSettings};
use serde_json::Value;
use ship_support::{deploy_objects, repo_root};

const SA_NAMESPACE: &str = "relbot";
const SA_NAME: &str = "relbot";

/// One rule, bound in one namespace (`None`: cluster-wide).
#[derive(Debug, Clone)]
struct Grant {
    namespace: Option<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    from: String,
}

/// What the API server authorises for one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    verb: String,
    group: String,
    /// `deployments`, or `deployments/status` for a subresource.
    resource: String,
    /// `None` for cluster-scoped objects and all-namespace requests.
    namespace: Option<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The grants deploy/ gives ServiceAccount relbot/relbot.
fn grants(objects: &[Value]) -> Vec<Grant> {
    let role = |kind: &str, name: &str, namespace: Option<&str>| {
        objects
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && (kind == "ClusterRole" || o["metadata"]["namespace"].as_str() == namespace)
            })
            .unwrap_or_else(|| panic!("a binding refers to missing {kind} {name}"))
    };
    let mut out = Vec::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let ours = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == SA_NAME
                    && s["namespace"] == SA_NAMESPACE
            });
        if !ours {
            continue;
        }
        let namespace = if binding["kind"] == "RoleBinding" {
            Some(
                binding["metadata"]["namespace"]
                    .as_str()
                    .expect("a RoleBinding has a namespace")
                    .to_string(),
            )
        } else {
            None
        };
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        let role = role(role_kind, role_name, namespace.as_deref());
        for rule in role["rules"].as_array().into_iter().flatten() {
            out.push(Grant {
                namespace: namespace.clone(),
                groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
                from: format!(
                    "{} {}/{} → {role_kind} {role_name}",
                    binding["kind"].as_str().unwrap_or_default(),
                    binding["metadata"]["namespace"].as_str().unwrap_or(""),
                    binding["metadata"]["name"].as_str().unwrap_or_default()
                ),
            });
        }
    }
    out
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

fn allowed(grants: &[Grant], access: &Access) -> bool {
    grants.iter().any(|g| {
        matches(&g.groups, &access.group)
            && matches(&g.resources, &access.resource)
            && matches(&g.verbs, &access.verb)
            && match (&g.namespace, &access.namespace) {
                (None, _) => true,
                (Some(bound), Some(wanted)) => bound == wanted,
                (Some(_), None) => false,
            }
    })
}

/// Maps a served request to what RBAC authorises; `None` for discovery
/// (granted to every authenticated user by `system:discovery`).
/// Everything the API server authorises for one request: a server-side
/// apply that creates its object (201) is checked as `patch` and `create`.
fn accesses_of(record: &RequestRecord) -> Vec<Access> {
    let Some(access) = access_of(record) else {
        return Vec::new();
    };
    let created = record.verb == "apply" && record.status == 201;
    let create = created.then(|| Access {
        verb: "create".into(),
        ..access.clone()
    });
    std::iter::once(access).chain(create).collect()
}

fn access_of(record: &RequestRecord) -> Option<Access> {
    if record.verb == "discovery" {
        return None;
    }
    let segments: Vec<&str> = record.path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    // namespaces/<ns>/<resource>[/<name>[/<sub>]] is namespaced, except
    // namespaces[/<name>] itself.
    let (namespace, resource_parts) = match rest {
        ["namespaces", ns, resource, tail @ ..] => (Some(ns.to_string()), {
            let mut v = vec![*resource];
            v.extend(tail);
            v
        }),
        other => (None, other.to_vec()),
    };
    let resource = match resource_parts.as_slice() {
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [] => return None,
    };
    // Server-side apply is authorised as `patch`.
    let verb = match record.verb.as_str() {
        "apply" => "patch".to_string(),
        other => other.to_string(),
    };
    Some(Access {
        verb,
        group: group.to_string(),
        resource,
        namespace,
    })
}

fn check_log(grants: &[Grant], log: &[RequestRecord]) -> BTreeSet<Access> {
    let mut seen = BTreeSet::new();
    let mut denied = Vec::new();
    for record in log {
        for access in accesses_of(record) {
            if !allowed(grants, &access) {
                denied.push(format!(
                    "{} {}{} → {access:?}",
                    record.method,
                    record.path,
                    if record.query.is_empty() {
                        String::new()
                    } else {
                        format!("?{}", record.query)
                    }
                ));
            }
            seen.insert(access);
        }
    }
    assert!(
        denied.is_empty(),
        "deploy/rbac.yaml does not grant what relbot did:\n{}",
        denied.join("\n")
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_rbac_grants_what_leader_election_does() {
    relbot::tls::init();
    let sim = KubeSim::start(SimOptions::default())
        .await
        .expect("emulator");
    let client = sim.client();
    // The namespace deploy/ creates.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": SA_NAMESPACE}}))
                .expect("namespace"),
        )
        .await
        .expect("create namespace relbot");
    sim.clear_request_log();

    // What `relbot serve` does with its Lease: acquire, renew, release, and a
    // second replica trying while the first holds it.
    let settings = |identity: &str| LeaseSettings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1200),
        retry_period: Duration::from_millis(200),
        ..LeaseSettings::new(SA_NAMESPACE, "relbot-leader", identity)
    };
    let a = Arc::new(LeaseElector::new(
        client.clone(),
        settings("relbot-a"),
        Arc::new(Metrics::new()),
    ));
    let b = Arc::new(LeaseElector::new(
        client.clone(),
        settings("relbot-b"),
        Arc::new(Metrics::new()),
    ));
    assert!(a.try_acquire_or_renew().await.expect("acquire"));
    assert!(!b.try_acquire_or_renew().await.expect("b waits"));
    assert!(a.try_acquire_or_renew().await.expect("renew"));
    a.release().await.expect("release");
    assert!(b.try_acquire_or_renew().await.expect("b takes over"));

    let log = sim.request_log();
    assert!(
        log.iter().any(|r| r.path.contains("/leases")),
        "the electors made no Lease requests: {log:#?}"
    );
    let seen = check_log(&grants(&deploy_objects()), &log);
    assert!(
        seen.iter()
            .all(|a| a.namespace.as_deref() == Some(SA_NAMESPACE)),
        "leader election must stay in relbot's own namespace: {seen:#?}"
    );
    sim.shutdown();
}

/// Until a sync's request log is checked here, the cluster-wide part of the
/// RBAC is held to what the reconciler's code does cluster-wide: a
/// label-selected `list` per synced kind, and Namespaces.
#[test]
fn ship_rbac_cluster_wide_grants_are_read_only() {
    let grants = grants(&deploy_objects());
    assert!(!grants.is_empty(), "deploy/ grants relbot nothing");
    for grant in grants.iter().filter(|g| g.namespace.is_none()) {
        for list in [&grant.groups, &grant.resources, &grant.verbs] {
            assert!(
                !list.iter().any(|v| v == "*"),
                "{}: no wildcards cluster-wide",
                grant.from
            );
        }
        assert!(
            !grant.resources.iter().any(|r| r == "secrets"),
            "{}: Secrets must not be listed cluster-wide by default",
            grant.from
        );
        for verb in &grant.verbs {
            let namespaces_only = grant.resources.iter().all(|r| r == "namespaces")
                && grant.groups.iter().all(|g| g.is_empty());
            let read = matches!(verb.as_str(), "get" | "list" | "watch");
            assert!(
                read || (namespaces_only && matches!(verb.as_str(), "create" | "patch")),
                "{}: cluster-wide {verb} on {:?}",
                grant.from,
                grant.resources
            );
            assert!(
                !matches!(
                    verb.as_str(),
                    "escalate" | "bind" | "impersonate" | "delete"
                ),
                "{}: {verb}",
                grant.from
            );
        }
    }
    // Every kind relbot may write in a namespace it can also find across the
    // cluster (the inventory list), or prune could never see it.
    for grant in grants
        .iter()
        .filter(|g| g.namespace.is_some() && g.verbs.iter().any(|v| v == "patch"))
    {
        for group in &grant.groups {
            for resource in &grant.resources {
                if grant.from.contains("relbot-self") {
                    continue;
                }
                let list = Access {
                    verb: "list".into(),
                    group: group.clone(),
                    resource: resource.clone(),
                    namespace: None,
                };
                assert!(
                    allowed(&grants, &list),
                    "relbot can write {group}/{resource} but not list it cluster-wide ({})",
                    grant.from
                );
            }
        }
    }
}

#[test]
fn ship_rbac_request_mapping() {
    let record = |method: &str, path: &str, verb: &str| RequestRecord {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        verb: verb.into(),
        dry_run: false,
        status: 200,
    };
    let a = access_of(&record("GET", "/apis/apps/v1/deployments", "list")).unwrap();
    assert_eq!(
        (a.group.as_str(), a.resource.as_str(), a.namespace),
        ("apps", "deployments", None)
    );
    let a = access_of(&record(
        "PATCH",
        "/apis/apps/v1/namespaces/ahuora/deployments/api",
        "apply",
    ))
    .unwrap();
    assert_eq!(a.verb, "patch");
    assert_eq!(a.namespace.as_deref(), Some("ahuora"));
    let creating = RequestRecord {
        status: 201,
        ..record("PATCH", "/api/v1/namespaces/ahuora", "apply")
    };
    let verbs: Vec<String> = accesses_of(&creating).into_iter().map(|a| a.verb).collect();
    assert_eq!(
        verbs,
        ["patch", "create"],
        "an apply that creates needs create too"
    );
    let a = access_of(&record("GET", "/api/v1/namespaces/ahuora", "get")).unwrap();
    assert_eq!((a.resource.as_str(), a.namespace), ("namespaces", None));
    let a = access_of(&record(
        "PUT",
        "/apis/apps/v1/namespaces/x/deployments/api/status",
        "update",
    ))
    .unwrap();
    assert_eq!(a.resource, "deployments/status");
    assert!(access_of(&record("GET", "/apis", "discovery")).is_none());

    let grants = grants(&deploy_objects());
    let in_ns = |ns: &str| Access {
        verb: "patch".into(),
        group: "apps".into(),
        resource: "deployments".into(),
        namespace: Some(ns.into()),
    };
    assert!(allowed(&grants, &in_ns("ahuora")));
    assert!(
        !allowed(&grants, &in_ns("default")),
        "no writes outside the managed namespaces"
    );
}

fn run_relbot(kubeconfig: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(ship_support::relbot_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run relbot");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `relbot sync` of the sample platform (both applications), then a
/// dry-run that must find it in sync, through the CLI as a person runs it:
/// every request is granted by deploy/, and everything deploy/ grants
/// cluster-wide is a verb the log uses cluster-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_rbac_grants_what_a_sync_of_the_sample_does() {
    relbot::tls::init();
    let sim = KubeSim::start(SimOptions {
        controllers: Some(kubesim::ControllerOptions::default()),
        ..Default::default()
    })
    .await
    .expect("emulator");
    let client = sim.client();
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(client.clone());
    for crd in ship_support::k3s_crds() {
        crds.create(
            &Default::default(),
            &serde_json::from_value(crd).expect("CRD"),
        )
        .await
        .expect("create CRD");
    }
    // What `kubectl apply -k deploy/` leaves behind that a sync relies on.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    for object in deploy_objects().iter().filter(|o| o["kind"] == "Namespace") {
        namespaces
            .create(
                &Default::default(),
                &serde_json::from_value(object.clone()).expect("namespace"),
            )
            .await
            .expect("create namespace");
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // CRDs established
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    sim.clear_request_log();

    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let kubeconfig = kubeconfig.clone();
        move || run_relbot(&kubeconfig, &["sync", "--source", "manifests-sample"])
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "relbot sync failed:\n{stdout}\n{stderr}");
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let kubeconfig = kubeconfig.clone();
        move || {
            run_relbot(
                &kubeconfig,
                &["sync", "--dry-run", "--source", "manifests-sample"],
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(
        code, 0,
        "a dry-run right after the sync is not in sync:\n{stdout}\n{stderr}"
    );

    let log = sim.request_log();
    assert!(
        log.iter().filter(|r| r.is_write()).count() > 10,
        "the sync wrote almost nothing"
    );
    let grants = grants(&deploy_objects());
    let seen = check_log(&grants, &log);

    // Cluster-wide: each verb granted is one the log uses cluster-wide on
    // that resource, or (for the kinds relbot syncs) the inventory `list`.
    let cluster_wide_verbs: BTreeSet<(String, String, String)> = seen
        .iter()
        .filter(|a| a.namespace.is_none())
        .map(|a| (a.group.clone(), a.resource.clone(), a.verb.clone()))
        .collect();
    let mut unneeded = Vec::new();
    for grant in grants.iter().filter(|g| g.namespace.is_none()) {
        for group in &grant.groups {
            for resource in &grant.resources {
                for verb in &grant.verbs {
                    let used = cluster_wide_verbs.contains(&(
                        group.clone(),
                        resource.clone(),
                        verb.clone(),
                    ));
                    let inventory_list =
                        verb == "list" && cluster_wide_verbs.iter().any(|(_, _, v)| v == "list");
                    // deploy/ creates the sample's namespaces, so this log
                    // applies them as updates; a Namespace new to the cluster
                    // needs `create` too (shown on a real server by
                    // ship_rbac_real_server).
                    let new_namespaces = resource == "namespaces" && verb == "create";
                    if !used && !inventory_list && !new_namespaces {
                        unneeded.push(format!("{} {group}/{resource} ({})", verb, grant.from));
                    }
                }
            }
        }
    }
    assert!(
        unneeded.is_empty(),
        "granted cluster-wide but never used cluster-wide by a sync:\n{}\nused: {cluster_wide_verbs:#?}",
        unneeded.join("\n")
    );
    sim.shutdown();
}
