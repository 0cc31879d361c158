//! Behaviour only the emulator offers (controllers mode, fault injection, the
//! request log, tunable watch history), skipped with a message on a real cluster.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kubesim::testing::TestCluster;
use kubesim::{ControllerOptions, SimOptions};
use serde_json::json;

use crate::common::{configmap, deployment, eventually, status};

fn controllers() -> SimOptions {
    SimOptions {
        controllers: Some(ControllerOptions {
            ready_delay: Duration::from_millis(100),
            failing_images: vec!["registry.test/broken".into()],
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn controllers_make_workloads_ready_and_report_failing_images() {
    let tc = TestCluster::acquire_with("emu-controllers", controllers()).await;
    if tc.require_emulator("controllers mode").is_none() {
        return;
    }
    let api: Api<Deployment> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    api.patch(
        "good",
        &pp,
        &Patch::Apply(deployment("good", "nginx:1.25", Some(2))),
    )
    .await
    .unwrap();
    api.patch(
        "bad",
        &pp,
        &Patch::Apply(deployment("bad", "registry.test/broken:1.0", Some(1))),
    )
    .await
    .unwrap();
    let good = eventually(Duration::from_secs(10), || async {
        let s = api.get("good").await.ok()?.status?;
        (s.ready_replicas == Some(2) && s.observed_generation == Some(1)).then_some(s)
    })
    .await
    .expect("good becomes ready");
    assert_eq!(good.available_replicas, Some(2));
    assert_eq!(good.updated_replicas, Some(2));
    let bad = eventually(Duration::from_secs(10), || async {
        let s = api.get("bad").await.ok()?.status?;
        s.conditions.is_some().then_some(s)
    })
    .await
    .expect("bad gets status");
    assert_eq!(bad.ready_replicas.unwrap_or(0), 0);
    let progressing = bad
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.status, "False");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("ProgressDeadlineExceeded")
    );

    let sets: Api<StatefulSet> = Api::namespaced(tc.client(), tc.namespace());
    let mut sts = deployment("db", "postgres:16", Some(2));
    sts["kind"] = json!("StatefulSet");
    sts["spec"]["serviceName"] = json!("db");
    sets.patch("db", &pp, &Patch::Apply(&sts)).await.unwrap();
    let daemons: Api<DaemonSet> = Api::namespaced(tc.client(), tc.namespace());
    let mut ds = deployment("agent", "registry.test/broken:3", None);
    ds["kind"] = json!("DaemonSet");
    daemons
        .patch("agent", &pp, &Patch::Apply(&ds))
        .await
        .unwrap();
    let ready = eventually(Duration::from_secs(10), || async {
        let s = sets.get("db").await.ok()?.status?;
        (s.ready_replicas == Some(2) && s.observed_generation == Some(1)).then_some(())
    })
    .await;
    assert!(ready.is_some(), "statefulset never ready");
    let ds_status = eventually(Duration::from_secs(10), || async {
        let s = daemons.get("agent").await.ok()?.status?;
        (s.observed_generation == Some(1)).then_some(s)
    })
    .await
    .expect("daemonset gets status");
    assert_eq!(ds_status.number_ready, 0, "a failing image is never ready");

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(tc.client(), tc.namespace());
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    pvcs.patch("data", &pp, &Patch::Apply(&pvc)).await.unwrap();
    let bound = eventually(Duration::from_secs(10), || async {
        let phase = pvcs.get("data").await.ok()?.status?.phase?;
        (phase == "Bound").then_some(())
    })
    .await;
    assert!(bound.is_some());

    let jobs: Api<Job> = Api::namespaced(tc.client(), tc.namespace());
    let job = |name: &str, image: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}}}})
    };
    jobs.patch("ok", &pp, &Patch::Apply(job("ok", "busybox:1.36")))
        .await
        .unwrap();
    jobs.patch(
        "ko",
        &pp,
        &Patch::Apply(job("ko", "registry.test/broken:2")),
    )
    .await
    .unwrap();
    for (name, want) in [("ok", "Complete"), ("ko", "Failed")] {
        let done = eventually(Duration::from_secs(10), || async {
            let conds = jobs.get(name).await.ok()?.status?.conditions?;
            conds
                .iter()
                .any(|c| c.type_ == want && c.status == "True")
                .then_some(())
        })
        .await;
        assert!(done.is_some(), "job {name} never {want}");
    }

    let services: Api<Service> = Api::namespaced(tc.client(), tc.namespace());
    let lb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "good"}, "ports": [{"port": 80}]}});
    services.patch("lb", &pp, &Patch::Apply(&lb)).await.unwrap();
    let ingresses: Api<Ingress> = Api::namespaced(tc.client(), tc.namespace());
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "web.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "lb", "port": {"number": 80}}}}]}}]}});
    ingresses
        .patch("web", &pp, &Patch::Apply(&ing))
        .await
        .unwrap();
    let addressed = eventually(Duration::from_secs(10), || async {
        let s = services
            .get("lb")
            .await
            .ok()?
            .status?
            .load_balancer?
            .ingress?;
        let i = ingresses
            .get("web")
            .await
            .ok()?
            .status?
            .load_balancer?
            .ingress?;
        (!s.is_empty() && !i.is_empty()).then_some(())
    })
    .await;
    assert!(addressed.is_some());
    tc.cleanup().await;
}

#[tokio::test]
async fn injected_failures_are_status_errors_with_retry_after() {
    let tc = TestCluster::acquire("emu-faults").await;
    let Some(sim) = tc.require_emulator("fault injection") else {
        return;
    };
    // kube's default client retries 429/503/504 by itself; see the raw answers without it.
    let kc = kube::config::Kubeconfig::read_from(tc.kubeconfig_path()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    let plain = kube::Client::try_from(cfg).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(plain.clone(), tc.namespace());
    sim.faults().fail_next(1, 500, None);
    let s = status(api.get_opt("x").await);
    assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
    sim.faults().fail_next(1, 429, Some(Duration::from_secs(2)));
    let s = status(api.get_opt("x").await);
    assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(s.details.unwrap().retry_after_seconds, 2);
    sim.faults().fail_next(2, 503, None);
    assert_eq!(status(api.get_opt("x").await).code, 503);
    assert_eq!(status(api.get_opt("x").await).code, 503);
    assert!(
        api.get_opt("x").await.unwrap().is_none(),
        "faults are used up"
    );
    sim.faults().fail_next(1, 429, Some(Duration::from_secs(3)));
    let req = http::Request::get("/version")
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = plain.send(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    // The default client rides over a single 503.
    sim.faults().fail_next(1, 503, None);
    let retrying: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    assert!(retrying.get_opt("x").await.unwrap().is_none());

    // Faults can target one verb and leave the others alone.
    sim.faults().fail_next_verb("apply", 1, 500, None);
    assert!(api.get_opt("x").await.unwrap().is_none());
    let s = status(
        api.patch(
            "x",
            &PatchParams::apply("relbot"),
            &Patch::Apply(configmap("x", json!({}))),
        )
        .await,
    );
    assert_eq!(s.code, 500);
    api.patch(
        "x",
        &PatchParams::apply("relbot"),
        &Patch::Apply(configmap("x", json!({}))),
    )
    .await
    .unwrap();
    api.delete("x", &Default::default()).await.unwrap();

    sim.faults().stall_next(Duration::from_millis(400));
    let start = std::time::Instant::now();
    api.get_opt("x").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));
    tc.cleanup().await;
}

#[tokio::test]
async fn dropped_watches_are_resumed_by_the_watcher() {
    let tc = TestCluster::acquire("emu-dropwatch").await;
    let Some(sim) = tc.require_emulator("fault injection") else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cfg = watcher::Config::default().labels("suite=drop");
    let mut stream = watcher(api.clone(), cfg).applied_objects().boxed();
    let pp = PatchParams::apply("relbot");
    let labelled = |name: &str| {
        let mut cm = configmap(name, json!({}));
        cm["metadata"]["labels"] = json!({"suite": "drop"});
        cm
    };
    api.patch("one", &pp, &Patch::Apply(labelled("one")))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("one"));
    sim.faults().drop_watches();
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.patch("two", &pp, &Patch::Apply(labelled("two")))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let o = stream.try_next().await.unwrap().unwrap();
            if o.metadata.name.as_deref() == Some("two") {
                return o;
            }
        }
    })
    .await;
    assert!(
        next.is_ok(),
        "the watcher never saw the object written after the drop"
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn request_log_counts_zero_writes_for_a_no_op_apply() {
    let tc = TestCluster::acquire("emu-requestlog").await;
    let Some(sim) = tc.require_emulator("request log") else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    let first = api
        .patch("a", &pp, &Patch::Apply(configmap("a", json!({"k": "v"}))))
        .await
        .unwrap();
    sim.clear_request_log();
    api.patch(
        "a",
        &pp.clone().dry_run(),
        &Patch::Apply(configmap("a", json!({"k": "v"}))),
    )
    .await
    .unwrap();
    let again = api
        .patch("a", &pp, &Patch::Apply(configmap("a", json!({"k": "v"}))))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
    let log = sim.request_log();
    assert_eq!(log.len(), 2);
    assert!(log[0].dry_run && log[0].verb == "apply");
    assert_eq!(log[1].verb, "apply");
    assert_eq!(log[1].status, 200);
    tc.cleanup().await;
}

#[tokio::test]
async fn watch_from_an_expired_resource_version_is_gone_and_bookmarks_flow() {
    let opts = SimOptions {
        watch_history: 2,
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let tc = TestCluster::acquire_with("emu-watch-history", opts).await;
    if tc.require_emulator("watch history size").is_none() {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..5 {
        api.patch(
            &format!("c{i}"),
            &PatchParams::apply("relbot"),
            &Patch::Apply(configmap(&format!("c{i}"), json!({}))),
        )
        .await
        .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    let now = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &now)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev, Some(WatchEvent::Bookmark(_))), "{ev:?}");
    tc.cleanup().await;
}

/// `write_latency` models etcd's commit: every committed write waits for it,
/// dry-runs and reads do not (they never reach storage).
#[tokio::test]
async fn write_latency_delays_committed_writes_only() {
    let latency = Duration::from_millis(150);
    let opts = SimOptions {
        write_latency: latency,
        ..Default::default()
    };
    let tc = TestCluster::acquire_with("emu-write-latency", opts).await;
    if tc.require_emulator("write latency").is_none() {
        return;
    }
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let body = configmap("slow", json!({"a": "1"}));
    let started = std::time::Instant::now();
    api.patch(
        "slow",
        &PatchParams::apply("relbot").dry_run(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
    api.list(&ListParams::default()).await.unwrap();
    let uncommitted = started.elapsed();
    let started = std::time::Instant::now();
    api.patch("slow", &PatchParams::apply("relbot"), &Patch::Apply(&body))
        .await
        .unwrap();
    let committed = started.elapsed();
    assert!(committed >= latency, "a write answered in {committed:?}");
    assert!(
        uncommitted < latency,
        "a dry-run and a list took {uncommitted:?}"
    );
    tc.cleanup().await;
}

/// The emulator serves streaming lists by default (as 1.32 does) and can
/// answer like the servers that do not, so a client's fallback can be tested.
#[tokio::test]
async fn streaming_lists_can_be_refused_like_older_or_etcd_limited_servers() {
    use crate::list_watch::{StreamingList, listed_then_watched, streaming_list};
    use kubesim::WatchList;
    for (mode, want) in [
        (WatchList::GateOff, StreamingList::GateOff),
        (WatchList::NoProgressNotify, StreamingList::NoProgressNotify),
    ] {
        let opts = SimOptions {
            watch_list: mode,
            ..Default::default()
        };
        let tc = TestCluster::acquire_with("emu-watch-list", opts).await;
        if tc.require_emulator("WatchList modes").is_none() {
            return;
        }
        let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
        let pp = PatchParams::apply("relbot");
        let mut cm = configmap("one", json!({}));
        cm["metadata"]["labels"] = json!({"suite": "wl"});
        api.patch("one", &pp, &Patch::Apply(&cm)).await.unwrap();
        assert_eq!(streaming_list(&api, "suite=wl").await, want, "{mode:?}");
        assert_eq!(
            listed_then_watched(&api, "suite=wl").await,
            ["one"],
            "{mode:?}"
        );
        tc.cleanup().await;
    }
}
