//! `relbot sync`, `relbot diff`, `relbot status`. Not built yet: the
//! reconciler lands here.

use clap::Args;

use super::{GlobalArgs, OutputFormat, Outcome, SourceArgs, not_built};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Show what would change; never write to the cluster
    #[arg(long)]
    pub dry_run: bool,
    /// Only this application (repeatable)
    #[arg(long = "app", value_name = "NAME")]
    pub apps: Vec<String>,
    /// Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, in-cluster]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Query a running `relbot serve` at this URL instead of the cluster
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run_sync(_global: &GlobalArgs, _args: SyncArgs) -> Outcome {
    not_built("sync")
}

pub fn run_diff(_global: &GlobalArgs, _args: DiffArgs) -> Outcome {
    not_built("diff")
}

pub fn run_status(_global: &GlobalArgs, _args: StatusArgs) -> Outcome {
    not_built("status")
}
