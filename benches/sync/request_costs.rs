//! What each kind of request a full sync sends costs the API server:
//! `RELBOT_BENCH_REAL=1 cargo bench --bench sync -- --requests`.
//!
//! The benchmark's 1,000 objects go out once per kind of request, 8 in
//! flight, each kind into a fresh namespace per round, through relbot's own
//! cluster client (so the very requests relbot sends: strict field
//! validation, field manager, force). Printed: the client's wall time and,
//! when this process started the control plane, the CPU time kube-apiserver
//! and etcd spent (from `/proc/<pid>/stat`). Medians of the rounds.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use relbot::cluster::client::{ApiFailure, Cluster};
use relbot::cluster::discovery::ResolvedKind;
use serde_json::Value;

use super::{Bench, FLOOR_CONCURRENCY, median};

/// The requests a full sync is made of, and one every request pays.
#[derive(Clone, Copy)]
enum Probe {
    GetMissing,
    CreateDryRun,
    ApplyDryRun,
    Apply,
}

impl Probe {
    const ALL: [Probe; 4] = [
        Probe::GetMissing,
        Probe::CreateDryRun,
        Probe::ApplyDryRun,
        Probe::Apply,
    ];

    fn label(self) -> &'static str {
        match self {
            Probe::GetMissing => "GET of a missing object (what any request costs)",
            Probe::CreateDryRun => "create, dryRun=All (check of a plain new object)",
            Probe::ApplyDryRun => "server-side apply, dryRun=All (any other check)",
            Probe::Apply => "server-side apply (the write)",
        }
    }

    async fn send(
        self,
        cluster: &Cluster,
        kind: &ResolvedKind,
        ns: &str,
        body: &Value,
    ) -> Result<(), ApiFailure> {
        let name = body["metadata"]["name"].as_str().expect("a name");
        let read = cluster.read_only();
        match self {
            Probe::GetMissing => read
                .get(kind, Some(ns), &format!("{name}-missing"))
                .await
                .map(drop),
            Probe::CreateDryRun => read.dry_run_create(kind, Some(ns), body).await.map(drop),
            Probe::ApplyDryRun => read
                .dry_run_apply(kind, Some(ns), name, body)
                .await
                .map(drop),
            Probe::Apply => cluster.apply(kind, Some(ns), name, body).await.map(drop),
        }
    }
}

/// CPU seconds a process has spent, user and system.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name, which ends with ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ, which Linux fixes at 100 for /proc.
    Some(ticks as f64 / 100.0)
}

impl Bench {
    pub(super) async fn request_costs(&self, runs: usize, version: &str, pids: &[(&str, u32)]) {
        let app_dir = self.write_files("app-1000", 1_000, "v1");
        let cluster = Cluster::from_client(self.client.clone(), "bench");
        let index = cluster.read_only().discover().await.expect("discovery");
        println!(
            "what each request of a full sync costs the API server ({version}): 1,000 objects, {FLOOR_CONCURRENCY} in flight, medians of {runs} rounds"
        );
        let columns: String = pids
            .iter()
            .map(|(name, _)| format!("{:>20}", format!("{name} CPU")))
            .collect();
        println!("{:<52} {:>9}{columns}", "request", "wall");
        let mut walls = vec![Vec::new(); Probe::ALL.len()];
        let mut cpu = vec![vec![Vec::new(); pids.len()]; Probe::ALL.len()];
        for round in 0..runs {
            for (i, probe) in Probe::ALL.into_iter().enumerate() {
                let ns = self.namespace(&format!("cost-{i}-{round}")).await;
                let bodies = self.bodies(&app_dir, &ns);
                let before: Vec<f64> = pids.iter().filter_map(|(_, p)| cpu_seconds(*p)).collect();
                let start = Instant::now();
                stream::iter(&bodies)
                    .map(|(kind, body)| {
                        let (group, version) = match kind.as_str() {
                            "Deployment" => ("apps", "v1"),
                            _ => ("", "v1"),
                        };
                        let kind = index
                            .resolve(group, version, kind)
                            .expect("a built-in kind");
                        let (cluster, ns) = (&cluster, &ns);
                        async move {
                            probe
                                .send(cluster, kind, ns, body)
                                .await
                                .unwrap_or_else(|e| panic!("{}: {e}", probe.label()))
                        }
                    })
                    .buffer_unordered(FLOOR_CONCURRENCY)
                    .collect::<Vec<()>>()
                    .await;
                walls[i].push(start.elapsed());
                let after: Vec<f64> = pids.iter().filter_map(|(_, p)| cpu_seconds(*p)).collect();
                for (j, (a, b)) in after.iter().zip(&before).enumerate() {
                    cpu[i][j].push(Duration::from_secs_f64(a - b));
                }
                if matches!(probe, Probe::Apply) {
                    self.settle(&ns, Duration::from_secs(60)).await;
                }
            }
        }
        for (i, probe) in Probe::ALL.into_iter().enumerate() {
            let spent: String = cpu[i]
                .iter_mut()
                .map(|values| format!("{:>18.2} s", median(values).as_secs_f64()))
                .collect();
            println!(
                "{:<52} {:>7.2} s{spent}",
                probe.label(),
                median(&mut walls[i]).as_secs_f64(),
            );
        }
        if pids.is_empty() {
            println!("(no CPU figures: the server was not started by this benchmark)");
        }
    }
}
