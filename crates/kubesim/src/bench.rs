//! Requests per second for get, list, apply and dry-run apply against a fresh
//! emulator through a real `kube::Client`, so relbot's own overhead can later
//! be told apart from the server's. Not a timed test: it only prints.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::{KubeSim, SimOptions};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Requests per measurement.
    pub requests: usize,
    /// ConfigMaps in the listed namespace.
    pub objects: usize,
    /// Requests in flight for the concurrent runs (kube opens one connection per request).
    pub concurrency: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            requests: 2000,
            objects: 100,
            concurrency: 8,
        }
    }
}

fn cm(name: &str, value: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"value": value.to_string(), "static": "x".repeat(64)}})
}

async fn measure<F, Fut>(n: usize, conc: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(&f)
        .buffer_unordered(conc.max(1))
        .collect::<Vec<()>>()
        .await;
    n as f64 / start.elapsed().as_secs_f64().max(f64::EPSILON)
}

/// Runs the benchmark and returns the printed report.
pub async fn run(opts: BenchOptions) -> Result<String, Box<dyn std::error::Error>> {
    let sim = KubeSim::start(SimOptions::default()).await?;
    let client = sim.client();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("bench");
    for i in 0..opts.objects {
        api.patch(
            &format!("cm-{i}"),
            &pp,
            &Patch::Apply(cm(&format!("cm-{i}"), 0)),
        )
        .await?;
    }
    let dry = PatchParams::apply("bench").dry_run();
    let lp = ListParams::default().labels("bench=yes");
    let mut out = format!(
        "kubesim bench: {} requests per row, {} ConfigMaps listed, kube::Client over HTTP/1.1\n{:<16}{:>14}{:>18}\n",
        opts.requests,
        opts.objects,
        "operation",
        "sequential",
        format!("concurrency {}", opts.concurrency)
    );
    let counter = std::sync::atomic::AtomicUsize::new(1);
    for op in ["get", "list", "apply", "dry-run apply"] {
        let mut row = Vec::new();
        for conc in [1, opts.concurrency] {
            let rps = measure(opts.requests, conc, |i| {
                let (api, pp, dry, lp, counter) = (&api, &pp, &dry, &lp, &counter);
                async move {
                    let name = format!("cm-{}", i % opts.objects.max(1));
                    let r = match op {
                        "get" => api.get(&name).await.map(|_| ()),
                        "list" => api.list(lp).await.map(|_| ()),
                        "apply" => {
                            let v = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            api.patch(&name, pp, &Patch::Apply(cm(&name, v)))
                                .await
                                .map(|_| ())
                        }
                        _ => api
                            .patch(&name, dry, &Patch::Apply(cm(&name, i + 1)))
                            .await
                            .map(|_| ()),
                    };
                    if let Err(e) = r {
                        eprintln!("bench {op}: {e}");
                    }
                }
            })
            .await;
            row.push(rps);
        }
        out.push_str(&format!(
            "{:<16}{:>10.0} rps{:>14.0} rps\n",
            op, row[0], row[1]
        ));
    }
    sim.shutdown();
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(out)
}
