//! Argument definitions and dispatch. Each subcommand's body lives in its own
//! file; they all return an [`Outcome`] so exit codes mean the same everywhere.

mod bump;
mod checkout;
mod completion;
mod document;
mod exit_code;
mod first_sync;
pub mod folder;
pub mod logging;
pub mod memory;
mod patch;
pub mod progress;
mod serve;
pub mod sync;
mod tag;
mod validate;
mod version;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "relbot",
    version,
    about = "Keep a Kubernetes cluster equal to git, and git's images current.",
    long_about = "relbot syncs a cluster-config git repository into a Kubernetes cluster \
(server-side apply, prune, self-heal, health), tags images with semver, and opens \
version-bump pull requests when a registry has newer tags - one update at a time.",
    after_help = "Examples:\n  relbot validate --source manifests-sample\n  relbot sync --dry-run --source manifests-sample\n  relbot diff --app platform\n  relbot serve --listen 0.0.0.0:8080\n  source <(relbot completion bash)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./relbot.yaml, or <--source>/relbot.yaml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Never colour output (also honoured: NO_COLOR)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// No live progress line on stderr (it is only shown on a terminal anyway)
    #[arg(long, global = true, env = "RELBOT_NO_PROGRESS",
        value_parser = clap::builder::FalseyValueParser::new())]
    pub no_progress: bool,
    /// More log detail (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people: aligned text, colour on a terminal
    #[value(alias = "table")]
    Text,
    /// For scripts
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the cluster match git (or, with --dry-run, show what would change)
    #[command(
        after_help = "Examples:\n  relbot sync --dry-run --source manifests-sample\n  relbot sync --app platform\n  relbot sync --context k3s-pi --output json\n\nExit code 0 in sync / synced, 1 changes found (--dry-run), 2 an error."
    )]
    Sync(sync::SyncArgs),
    /// Show what a sync would change, as a diff (never writes)
    #[command(
        after_help = "Examples:\n  relbot diff --source manifests-sample\n  relbot diff --app platform --output yaml\n\nExit code 0 no differences, 1 differences, 2 an error (like `argocd app diff`)."
    )]
    Diff(sync::DiffArgs),
    /// Show the last sync result of each application
    #[command(
        after_help = "Examples:\n  relbot status\n  relbot status --output json\n  relbot status --server http://127.0.0.1:8080"
    )]
    Status(sync::StatusArgs),
    /// Check registries for newer image tags and open version-bump pull requests
    #[command(
        after_help = "Examples:\n  relbot bump --dry-run --source manifests-sample\n  relbot bump --policy django-api\n  relbot bump --dry-run --registry-mirror docker.io=127.0.0.1:5000 --output json\n\nExit code 0 nothing to bump / bumps published, 1 bumps found (--dry-run), 2 an error."
    )]
    Bump(bump::BumpArgs),
    /// Create the next semver tag from commit messages
    Tag(tag::TagArgs),
    /// Run the in-cluster service: webhooks, schedules, metrics, status page
    #[command(
        after_help = "Examples:\n  relbot serve --listen 0.0.0.0:8080\n\nRoutes: /webhooks/github, /webhooks/registry/<token>, /healthz, /readyz, /metrics, /api/status, / (status).\nSee docs/operations.md for the Secrets and webhooks it reads."
    )]
    Serve(serve::ServeArgs),
    /// Check configuration, policies and manifests offline
    Validate(validate::ValidateArgs),
    /// Print the version
    Version,
    /// Print a shell completion script (bash, zsh, fish)
    Completion(completion::CompletionArgs),
}

/// Where desired state comes from, shared by the commands that read it.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read manifests from this directory instead of cloning the configured repository
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

impl SourceArgs {
    /// The configuration file: `--config`, else `<--source>/relbot.yaml`, else `./relbot.yaml`.
    pub fn config_path(&self, global: &GlobalArgs) -> PathBuf {
        if let Some(path) = &global.config {
            return path.clone();
        }
        match &self.source {
            Some(dir) => dir.join("relbot.yaml"),
            None => Path::new("relbot.yaml").to_path_buf(),
        }
    }
}

/// Loads the configuration `source` and `global` name. On failure, prints
/// every problem, then `consequence` (what the command did not do), and, when
/// the file is simply not there, where relbot looked and how to point it
/// elsewhere.
pub fn load_config(
    global: &GlobalArgs,
    source: &SourceArgs,
    consequence: &str,
) -> Result<relbot::config::LoadedConfig, Outcome> {
    let path = source.config_path(global);
    relbot::config::load(&path).map_err(|e| {
        progress::around_output(|| {
            eprintln!("{e}");
            eprintln!(
                "{} problem(s) in the configuration; {consequence}",
                e.problems.len()
            );
            if !path.exists() {
                eprintln!(
                    "hint: relbot looked for {}; run it from the cluster-config repository's root, or pass --source <dir> (the checkout holding relbot.yaml, or a plain folder of manifests) or --config <file>",
                    path.display()
                );
            }
        });
        Outcome::Failed
    })
}

/// How a command ended; the process exit code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, or nothing to do / in sync (0)
    Clean,
    /// Changes found by a dry-run or diff (1)
    Changes,
    /// Something went wrong; the message has been printed (2)
    Failed,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(match outcome {
            Outcome::Clean => 0,
            Outcome::Changes => 1,
            Outcome::Failed => 2,
        })
    }
}

pub fn run(cli: Cli) -> Outcome {
    let global = &cli.global;
    match cli.command {
        Command::Sync(args) => sync::run_sync(global, args),
        Command::Diff(args) => sync::run_diff(global, args),
        Command::Status(args) => sync::run_status(global, args),
        Command::Validate(args) => validate::run(global, args),
        Command::Version => version::run(),
        Command::Bump(args) => bump::run(global, args),
        Command::Tag(args) => tag::run(global, args),
        Command::Serve(args) => serve::run(global, args),
        Command::Completion(args) => completion::run(args),
    }
}

/// Colour only on a terminal, and never when asked not to.
pub fn use_color(global: &GlobalArgs) -> bool {
    use std::io::IsTerminal;
    !global.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}
