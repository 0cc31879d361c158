//! `relbot serve`: the long-running service (webhooks, schedules, the
//! update queue, `/metrics`, the status page). The wiring lives in
//! [`relbot::server::app`]; this file only turns arguments into options.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use relbot::cluster::client::ClusterTarget;
use relbot::server::app::{self, ServeOptions};
use relbot::server::http::HttpSettings;
use relbot::server::shutdown::DRAIN_DEADLINE;
use tokio_util::sync::CancellationToken;

use super::{GlobalArgs, Outcome, OutputFormat, SourceArgs};

#[derive(Debug, Args)]
#[command(after_help = "Environment:
  RELBOT_GITHUB_WEBHOOK_SECRET (or _FILE)  secret for POST /webhooks/github (HMAC-SHA256)
  RELBOT_REGISTRY_WEBHOOK_TOKEN (or _FILE) token for POST /webhooks/registry/<token>
  RELBOT_NOTIFY_WEBHOOK_URL (or _FILE)     where notifications.webhook posts (a secret)
  RELBOT_CACHE_DIR                         where the repository is cached
  POD_NAME                                 this replica's name in the Leases
  RELBOT_SHARDS                            --shards (overrides serve.shards in relbot.yaml)
  RELBOT_LOG                               log filter (e.g. info,relbot=debug)

Endpoints: / (status page), /api/status (JSON), /healthz, /readyz, /metrics")]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Address to listen on (the container image passes 0.0.0.0:8080)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, in-cluster]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the leader-election Lease [default: the config's status.namespace]
    #[arg(long, value_name = "NAMESPACE", env = "RELBOT_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Split applications across replicas into N shards, one Lease each
    /// (relbot-shard-0 …); every replica of the Deployment passes the same N.
    /// Overrides `serve.shards` in relbot.yaml. Without either, the replica
    /// holding the `relbot` Lease syncs everything
    #[arg(long, value_name = "N", env = "RELBOT_SHARDS", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub shards: Option<u32>,
    /// Repository cache [default: $RELBOT_CACHE_DIR, $XDG_CACHE_HOME/relbot, ~/.cache/relbot]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: ServeArgs) -> Outcome {
    let settings = match HttpSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read a webhook secret file: {e}");
            return Outcome::Failed;
        }
    };
    if settings.github_secret.is_none() {
        tracing::warn!(
            "RELBOT_GITHUB_WEBHOOK_SECRET is not set: GitHub webhooks will be refused (401)"
        );
    }
    let options = ServeOptions {
        listen: args.listen,
        config_path: args.source.config_path(global),
        cache_dir: args.cache_dir.unwrap_or_else(app::default_cache_dir),
        cluster: ClusterTarget {
            kubeconfig: args.kubeconfig,
            context: args.context,
        },
        lease_namespace: args.lease_namespace,
        identity: app::default_identity(),
        drain_deadline: DRAIN_DEADLINE,
        shards: args.shards,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Outcome::Failed;
        }
    };
    match runtime.block_on(app::run(options, settings, CancellationToken::new())) {
        Ok(outcome) => {
            if outcome.queue.abandoned {
                tracing::warn!(
                    "the running update was stopped at a safe point; the next start converges"
                );
            }
            Outcome::Clean
        }
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Failed
        }
    }
}

/// `relbot status --server URL`: what a running `relbot serve` reports at
/// `/api/status`, as text or as the server's JSON/YAML.
pub async fn status_from_server(server: &str, output: OutputFormat) -> Outcome {
    relbot::tls::init();
    let url = format!("{}/api/status", server.trim_end_matches('/'));
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build an HTTP client: {e}");
            return Outcome::Failed;
        }
    };
    let response = match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            eprintln!(
                "error: {url} answered {}; is it a relbot serve?",
                r.status()
            );
            return Outcome::Failed;
        }
        Err(e) => {
            eprintln!("error: cannot reach {url}: {e}");
            return Outcome::Failed;
        }
    };
    let status: serde_json::Value = match response.json().await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {url} did not answer JSON: {e}");
            return Outcome::Failed;
        }
    };
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        ),
        OutputFormat::Yaml => match serde_saphyr::to_string(&status) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("error: cannot render YAML: {e}"),
        },
        OutputFormat::Text => print!("{}", status_text(&status)),
    }
    let failed = status["apps"]
        .as_array()
        .is_some_and(|apps| apps.iter().any(|a| a["sync"] == "Failed"));
    if failed {
        Outcome::Failed
    } else {
        Outcome::Clean
    }
}

fn status_text(status: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "{} {} at {} (ready: {}, leader: {})\n",
        text(&status["repository"]),
        text(&status["branch"]),
        relbot::revision::short_revision(&text(&status["revision"])),
        status["ready"],
        status["leader"],
    );
    for app in status["apps"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<24} {:<10} {:<12} {}\n",
            text(&app["name"]),
            text(&app["sync"]),
            text(&app["health"]),
            text(&app["message"]),
        ));
    }
    for pr in status["pending_prs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  PR #{} {} ({})\n",
            pr["number"],
            text(&pr["title"]),
            text(&pr["policy"])
        ));
    }
    out
}
