use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kubesim::testing::TestCluster;
use serde_json::json;

use crate::common::configmap;

async fn seed(api: &Api<ConfigMap>, n: usize) {
    for i in 0..n {
        let mut cm = configmap(&format!("cm-{i}"), json!({"i": i.to_string()}));
        cm["metadata"]["labels"] =
            json!({"tier": if i % 2 == 0 { "even" } else { "odd" }, "suite": "lw"});
        api.patch(
            &format!("cm-{i}"),
            &PatchParams::apply("relbot"),
            &Patch::Apply(cm),
        )
        .await
        .unwrap();
    }
}

fn names(items: &[ConfigMap]) -> Vec<String> {
    items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn list_filters_by_label_and_field_selectors() {
    let tc = TestCluster::acquire("lw-selectors").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    seed(&api, 5).await;
    let even = api
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(names(&even.items), ["cm-0", "cm-2", "cm-4"]);
    let set = api
        .list(&ListParams::default().labels("tier in (odd),suite"))
        .await
        .unwrap();
    assert_eq!(names(&set.items), ["cm-1", "cm-3"]);
    let not = api
        .list(&ListParams::default().labels("tier!=even,suite=lw"))
        .await
        .unwrap();
    assert_eq!(names(&not.items), ["cm-1", "cm-3"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=cm-2"))
        .await
        .unwrap();
    assert_eq!(names(&by_name.items), ["cm-2"]);
    let by_ns = api
        .list(
            &ListParams::default()
                .fields(&format!("metadata.namespace={}", tc.namespace()))
                .labels("suite=lw"),
        )
        .await
        .unwrap();
    assert_eq!(by_ns.items.len(), 5);
    assert!(by_ns.metadata.resource_version.is_some());
    tc.cleanup().await;
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let tc = TestCluster::acquire("lw-pages").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    seed(&api, 5).await;
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("suite=lw").limit(2);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(names(&page.items));
        pages += 1;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);
    tc.cleanup().await;
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_every_change() {
    let tc = TestCluster::acquire("lw-watch").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let pp = PatchParams::apply("relbot");
    api.patch("w", &pp, &Patch::Apply(configmap("w", json!({"v": "1"}))))
        .await
        .unwrap();
    api.patch("w", &pp, &Patch::Apply(configmap("w", json!({"v": "2"}))))
        .await
        .unwrap();
    api.delete("w", &Default::default()).await.unwrap();
    // Only "w": on a real cluster kube-controller-manager adds kube-root-ca.crt
    // to every namespace shortly after it is created, in the middle of this.
    let wp = WatchParams::default().fields("metadata.name=w").timeout(10);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stream open");
        match ev {
            WatchEvent::Added(o) => kinds.push(("ADDED", o.data.unwrap()["v"].clone())),
            WatchEvent::Modified(o) => kinds.push(("MODIFIED", o.data.unwrap()["v"].clone())),
            WatchEvent::Deleted(o) => kinds.push(("DELETED", o.data.unwrap()["v"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        kinds,
        [
            ("ADDED", "1".to_string()),
            ("MODIFIED", "2".to_string()),
            ("DELETED", "2".to_string())
        ]
    );
    tc.cleanup().await;
}

#[tokio::test]
async fn kube_runtime_watcher_follows_changes() {
    let tc = TestCluster::acquire("lw-watcher").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let cfg = watcher::Config::default().labels("suite=watcher");
    let mut stream = watcher(api.clone(), cfg).applied_objects().boxed();
    let writer = api.clone();
    let write = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut cm = configmap("seen", json!({"v": "1"}));
        cm["metadata"]["labels"] = json!({"suite": "watcher"});
        writer
            .patch("seen", &PatchParams::apply("relbot"), &Patch::Apply(cm))
            .await
            .unwrap();
    });
    let got = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
        .await
        .expect("the watcher saw the object in time")
        .unwrap()
        .unwrap();
    assert_eq!(got.metadata.name.as_deref(), Some("seen"));
    write.await.unwrap();
    tc.cleanup().await;
}

/// How a server answered a streaming list (`sendInitialEvents=true`).
#[derive(Debug, PartialEq)]
pub enum StreamingList {
    /// The initial objects (names, sorted), then the bookmark annotated
    /// `k8s.io/initial-events-end` (kube's watcher turns it into `InitDone`).
    Served(Vec<String>),
    /// 422 before the watch starts: the WatchList feature gate is off
    /// (1.27–1.31 by default).
    GateOff,
    /// A 500 ERROR event: the gate is on (1.32+) but etcd cannot give the
    /// progress notifications WatchList needs (older than 3.4.31 / 3.5.13).
    NoProgressNotify,
}

/// Asks for a streaming list of the ConfigMaps matching `labels` and checks
/// the answer has the exact shape kube-apiserver gives in each case.
pub async fn streaming_list(api: &Api<ConfigMap>, labels: &str) -> StreamingList {
    let cfg = watcher::Config::default().labels(labels).streaming_lists();
    let mut stream = watcher(api.clone(), cfg).boxed();
    let mut names = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .expect("events in time");
        match next {
            Ok(Some(watcher::Event::InitApply(o))) => names.push(o.metadata.name.unwrap()),
            Ok(Some(watcher::Event::InitDone)) => {
                names.sort();
                return StreamingList::Served(names);
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the watcher ended"),
            Err(watcher::Error::WatchStartFailed(kube::Error::Api(s))) => {
                assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
                assert_eq!(
                    s.message,
                    "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
                );
                let d = s.details.expect("details");
                assert_eq!(
                    (d.group.as_str(), d.kind.as_str(), d.name.as_str()),
                    ("meta.k8s.io", "ListOptions", "")
                );
                assert_eq!(
                    (d.causes[0].reason.as_str(), d.causes[0].field.as_str()),
                    ("FieldValueForbidden", "sendInitialEvents")
                );
                return StreamingList::GateOff;
            }
            Err(watcher::Error::WatchError(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
                assert_eq!(
                    s.message,
                    "a watch stream was requested by the client but the required storage feature RequestWatchProgress is disabled"
                );
                return StreamingList::NoProgressNotify;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// The initial objects through a plain list+watch: what a client falls back to
/// when a server refuses streaming lists.
pub async fn listed_then_watched(api: &Api<ConfigMap>, labels: &str) -> Vec<String> {
    let mut stream = watcher(api.clone(), watcher::Config::default().labels(labels)).boxed();
    let mut names = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .expect("events in time")
            .unwrap()
            .expect("the watcher goes on");
        match ev {
            watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    names
}

/// Whether a server streams lists is found out by asking (1.28 refuses, 1.32
/// serves them or, on an old etcd, fails the stream); a refusal must have the
/// real shape, and the same objects then come through list+watch.
#[tokio::test]
async fn streaming_list_sends_initial_events_then_a_bookmark() {
    let tc = TestCluster::acquire("lw-streaming").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    seed(&api, 2).await;
    let names = match streaming_list(&api, "suite=lw").await {
        StreamingList::Served(names) => names,
        refused => {
            println!("streaming lists refused ({refused:?}): list+watch instead");
            listed_then_watched(&api, "suite=lw").await
        }
    };
    assert_eq!(names, ["cm-0", "cm-1"]);
    tc.cleanup().await;
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let tc = TestCluster::acquire("lw-transitions").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client(), tc.namespace());
    let pp = PatchParams::apply("relbot");
    let labelled = |value: &str| {
        let mut cm = configmap("t", json!({}));
        cm["metadata"]["labels"] = json!({"sel": value});
        cm
    };
    api.patch("t", &pp, &Patch::Apply(labelled("no")))
        .await
        .unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.patch("t", &pp, &Patch::Apply(labelled("yes")))
        .await
        .unwrap();
    api.patch("t", &pp, &Patch::Apply(labelled("no")))
        .await
        .unwrap();
    let wp = WatchParams::default().labels("sel=yes").timeout(10);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stream open");
        match ev {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Modified(_) => seen.push("MODIFIED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED", "DELETED"]);
    tc.cleanup().await;
}
