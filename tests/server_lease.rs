//! Leader election against the API-server emulator (or a real cluster via
//! RELBOT_TEST_KUBECONFIG): two electors, only one leads and only the leader
//! writes; a leader that dies without releasing is replaced after the lease
//! duration; a graceful release hands over at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kubesim::testing::TestCluster;
use relbot::server::Metrics;
use relbot::server::lease::{LeaseElector, LeaseSettings};

fn settings(namespace: &str, identity: &str) -> LeaseSettings {
    LeaseSettings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1200),
        retry_period: Duration::from_millis(200),
        ..LeaseSettings::new(namespace, "relbot-leader", identity)
    }
}

fn elector(cluster: &TestCluster, identity: &str) -> (Arc<LeaseElector>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let elector = Arc::new(LeaseElector::new(
        cluster.client(),
        settings(cluster.namespace(), identity),
        metrics.clone(),
    ));
    (elector, metrics)
}

async fn holder(cluster: &TestCluster) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(cluster.client(), cluster.namespace());
    api.get_opt("relbot-leader")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if condition() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_elects_one_leader_and_fails_over() {
    relbot::tls::init();
    let cluster = TestCluster::acquire("lease-failover").await;
    let (a, a_metrics) = elector(&cluster, "replica-a");
    let (b, _) = elector(&cluster, "replica-b");

    // Racing single attempts: exactly one wins.
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra ^ rb,
        "exactly one of two racing candidates wins: a={ra} b={rb}"
    );
    let first = if ra { "replica-a" } else { "replica-b" };
    assert_eq!(holder(&cluster).await.as_deref(), Some(first));
    // The loser keeps losing while the winner renews.
    let loser = if ra { &b } else { &a };
    let winner = if ra { &a } else { &b };
    assert!(winner.try_acquire_or_renew().await.unwrap());
    assert!(!loser.try_acquire_or_renew().await.unwrap());
    winner.release().await.unwrap();
    // A released Lease exists: both race to replace it with the same
    // resourceVersion, and the API server's conflict check lets one through.
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    assert!(
        ra.unwrap() ^ rb.unwrap(),
        "exactly one wins the race for a released Lease"
    );
    a.release().await.unwrap();
    b.release().await.unwrap();
    assert_eq!(holder(&cluster).await, None);

    // Campaigns: a starts first and leads; b stands by.
    let a_handle = a.clone().spawn();
    wait_until(Duration::from_secs(5), || a.is_leader())
        .await
        .expect("a leads");
    let b_handle = b.clone().spawn();
    // Several renew periods: leadership never doubles, the holder stays a.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!(a.is_leader() && b.is_leader()), "two leaders at once");
        assert!(a.is_leader() && !b.is_leader());
    }
    assert_eq!(holder(&cluster).await.as_deref(), Some("replica-a"));
    assert_eq!(a_metrics.lease_held.get(&[]), 1.0);

    // Kill a without releasing: b takes over once the lease expires, not before.
    let killed = Instant::now();
    a_handle.abandon().await;
    let waited = wait_until(Duration::from_secs(10), || b.is_leader())
        .await
        .expect("b takes over");
    let lease = settings("", "").lease_duration;
    assert!(
        killed.elapsed() >= lease - Duration::from_millis(300),
        "took over after {:?}, before the {lease:?} lease expired",
        killed.elapsed()
    );
    assert!(
        waited <= lease + Duration::from_secs(2),
        "takeover took {waited:?}"
    );
    assert_eq!(holder(&cluster).await.as_deref(), Some("replica-b"));
    assert_eq!(a_metrics.lease_held.get(&[]), 0.0);

    // Graceful release by b: a (campaigning again) takes over quickly.
    let a_handle = a.clone().spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!a.is_leader(), "b still holds the lease");
    let released = Instant::now();
    b_handle.stop_and_release().await.unwrap();
    assert!(!b.is_leader());
    wait_until(Duration::from_secs(5), || a.is_leader())
        .await
        .expect("a takes over after release");
    assert!(
        released.elapsed() < lease,
        "takeover after release took {:?}, as long as an expiry",
        released.elapsed()
    );
    a_handle.stop_and_release().await.unwrap();
    assert_eq!(holder(&cluster).await, None);
    cluster.cleanup().await;
}
