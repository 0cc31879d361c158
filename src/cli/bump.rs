//! `relbot bump`: check registries for newer image tags and propose them.
//!
//! With `--dry-run` the tree in `--source` (or the directory of relbot.yaml)
//! is scanned and the bumps are printed; nothing is pushed or opened. Exit
//! codes: 0 nothing to bump or bumps published, 1 a dry-run found bumps,
//! 2 error.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use relbot::cluster::client::ClusterTarget;
use relbot::config::LoadedConfig;
use relbot::progress::Progress;
use relbot::release::bump::{
    BumpError, BumpOptions, BumpReport, MergeState, PolicyOutcome, PolicyReport, Publisher,
    PublisherError, RollbackDecision, StaticHealth, run_bumps,
};
use relbot::release::registry::{
    CredentialsError, RegistryClient, RegistryCredentials, RegistryError, RegistrySettings,
};
use relbot::sync::engine::{PlanTarget, open_for_plan};

use super::validate::print_structured;
use super::{GlobalArgs, Outcome, OutputFormat, SourceArgs};

#[derive(Debug, Args)]
pub struct BumpArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Only this policy (repeatable)
    #[arg(long = "policy", value_name = "NAME")]
    pub policies: Vec<String>,
    /// Print the bumps that would be proposed; push and open nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Reach a registry through another host, e.g. docker.io=127.0.0.1:5000 (repeatable; overrides relbot.yaml)
    #[arg(long = "registry-mirror", value_name = "HOST=MIRROR")]
    pub registry_mirrors: Vec<String>,
    /// Working clone for publishing [default: $RELBOT_CACHE_DIR/bump, else ~/.cache/relbot/bump]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value_t = BumpOutput::Text)]
    pub output: BumpOutput,
}

/// `relbot bump`'s output: the shared formats, and a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BumpOutput {
    /// For people: one line per policy and `old → new` per changed line
    #[value(alias = "table")]
    Text,
    /// For scripts
    Json,
    Yaml,
    /// With --dry-run: each edit as a unified diff, as `git diff` shows it
    Diff,
}

pub fn run(global: &GlobalArgs, args: BumpArgs) -> Outcome {
    if args.output == BumpOutput::Diff && !args.dry_run {
        eprintln!(
            "error: --output diff shows the edits a dry run proposes; add --dry-run (a published bump's diff is its pull request)"
        );
        return Outcome::Failed;
    }
    let loaded = match super::load_config(global, &args.source, "nothing was changed.") {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Outcome::Failed;
        }
    };
    let (progress, shown) = super::progress::start(global);
    let result = runtime.block_on(bump(&loaded, &args, progress));
    super::progress::finish(shown);
    let report = match result {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("nothing was changed.");
            return Outcome::Failed;
        }
    };
    print_report(&report, args.output, &root_of(&loaded, &args));
    if report.failed() {
        Outcome::Failed
    } else if report.dry_run && report.bumps().next().is_some() {
        Outcome::Changes
    } else {
        Outcome::Clean
    }
}

/// Why `relbot bump` could not run (a policy's own failure is in the report).
#[derive(Debug, thiserror::Error)]
enum BumpFailure {
    #[error("--registry-mirror {0:?}: expected HOST=MIRROR, e.g. docker.io=127.0.0.1:5000")]
    Mirror(String),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{}", publisher_words(.0))]
    Publisher(#[from] PublisherError),
    #[error(transparent)]
    Bump(#[from] BumpError),
}

/// A missing section of relbot.yaml points at the way round it.
fn publisher_words(error: &PublisherError) -> String {
    if error.is_missing_section() {
        format!("{error} (or use --dry-run)")
    } else {
        error.to_string()
    }
}

async fn bump(
    loaded: &LoadedConfig,
    args: &BumpArgs,
    progress: Progress,
) -> Result<BumpReport, BumpFailure> {
    let mut settings = RegistrySettings::from_config(&loaded.config.registries);
    for mirror in &args.registry_mirrors {
        let (host, to) = mirror
            .split_once('=')
            .ok_or_else(|| BumpFailure::Mirror(mirror.clone()))?;
        settings.set_host(host.trim(), Some(to.trim()), false);
    }
    let credentials = RegistryCredentials::from_environment()?;
    let registry = RegistryClient::new(settings, credentials)?;
    let root = root_of(loaded, args);
    let options = BumpOptions {
        only: args.policies.clone(),
        dry_run: args.dry_run,
        progress,
    };
    let publisher = match Publisher::from_config(&loaded.config, work_dir(args)) {
        Ok(publisher) => publisher,
        // A dry run without GitHub still shows the bumps; rollback and
        // hold need the PR history, so it says they were not checked.
        Err(reason) if args.dry_run => {
            eprintln!(
                "note: rollback and hold not checked: {}",
                publisher_words(&reason)
            );
            return Ok(run_bumps(loaded, &root, &registry, None, &options).await?);
        }
        Err(reason) => return Err(reason.into()),
    };
    let health = stored_health(loaded, &args.policies).await;
    // In a dry run the publisher only reads: PR history and health.
    let publisher = publisher.with_health(&health);
    Ok(run_bumps(loaded, &root, &registry, Some(&publisher), &options).await?)
}

/// The health the reconciler last stored for each policy's application, read
/// from its status ConfigMaps when a cluster is reachable (read-only). No
/// cluster, or no status yet: unknown, which never holds a merge back and
/// never rolls anything back.
async fn stored_health(loaded: &LoadedConfig, only: &[String]) -> StaticHealth {
    let mut health = StaticHealth::default();
    let mut applications: Vec<&str> = loaded
        .policies
        .iter()
        .filter(|p| only.is_empty() || only.iter().any(|n| n == p.policy.name()))
        .filter_map(|p| p.policy.spec.application.as_deref())
        .collect();
    applications.sort_unstable();
    applications.dedup();
    if applications.is_empty() {
        return health;
    }
    let cluster = match open_for_plan(&ClusterTarget::default()).await {
        Ok(PlanTarget::Live(cluster)) => cluster,
        Ok(PlanTarget::Offline { reason }) => {
            tracing::info!(%reason, "application health unknown; merges are not held back");
            return health;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read application health; merges are not held back");
            return health;
        }
    };
    let namespace = &loaded.config.status.namespace;
    for app in applications {
        if let Some(result) = relbot::sync::status::read(&cluster, namespace, app)
            .await
            .and_then(|s| s.result)
        {
            health = health.with_observation(app, relbot::server::observed::observation(&result));
        }
    }
    health
}

fn work_dir(args: &BumpArgs) -> PathBuf {
    if let Some(dir) = &args.work_dir {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("RELBOT_CACHE_DIR") {
        return PathBuf::from(dir).join("bump");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/relbot/bump")
}

/// The tree a dry run scans: `--source`, else the directory of relbot.yaml.
fn root_of(loaded: &LoadedConfig, args: &BumpArgs) -> PathBuf {
    args.source
        .source
        .clone()
        .unwrap_or_else(|| loaded.base_dir().to_path_buf())
}

fn print_report(report: &BumpReport, format: BumpOutput, root: &Path) {
    match format {
        BumpOutput::Json => print_structured(
            OutputFormat::Json,
            &serde_json::to_value(report).unwrap_or_default(),
        ),
        BumpOutput::Yaml => print_structured(
            OutputFormat::Yaml,
            &serde_json::to_value(report).unwrap_or_default(),
        ),
        BumpOutput::Text => print_text(report, &mut std::io::stdout()),
        // The patch alone on stdout (`| git apply` works); the summary on stderr.
        BumpOutput::Diff => {
            print_diff(report, root);
            print_text(report, &mut std::io::stderr());
        }
    }
}

/// Each bump's files as `git diff` shows them, under a `# policy: image
/// old → new` line (`git apply` skips text between file diffs).
fn print_diff(report: &BumpReport, root: &Path) {
    for line in &report.policies {
        let Some(plan) = &line.bump else {
            continue;
        };
        println!("# {}: {} {}", line.policy, line.image, plan.versions());
        for file in &plan.files {
            match std::fs::read_to_string(root.join(&file.path)) {
                Ok(old) => print!(
                    "{}",
                    super::patch::file_diff(&file.path, &old, &file.new_text)
                ),
                Err(e) => eprintln!(
                    "{}: cannot read {}: {e}",
                    line.policy,
                    root.join(&file.path).display()
                ),
            }
        }
    }
}

fn print_text(report: &BumpReport, out: &mut dyn std::io::Write) {
    // Output that cannot be written (a closed pipe) has nobody to tell, so
    // write errors are dropped.
    for line in &report.policies {
        match (&line.bump, &line.outcome) {
            (_, PolicyOutcome::Failed { error }) => {
                eprintln!("{}: {} failed: {error}", line.policy, line.image);
            }
            (None, PolicyOutcome::HeldAfterRollback { failed, wanted }) => {
                let _ = writeln!(
                    out,
                    "{}: {} held at {} — a revert undid {failed}, so {wanted} is not proposed; a tag newer than {failed} lifts the hold",
                    line.policy,
                    line.image,
                    line.current.join(", ")
                );
            }
            (None, _) => {
                let current = if line.current.is_empty() {
                    "no references found".to_string()
                } else {
                    line.current.join(", ")
                };
                let _ = writeln!(
                    out,
                    "{}: {} up to date ({current})",
                    line.policy, line.image
                );
            }
            (Some(plan), outcome) => {
                let files: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
                let _ = writeln!(
                    out,
                    "{}: {} {}{} ({}){}",
                    line.policy,
                    line.image,
                    if line.is_revert() { "revert " } else { "" },
                    plan.versions(),
                    files.join(", "),
                    describe(outcome, line.merge.as_ref())
                );
                for file in &plan.files {
                    for change in &file.changes {
                        let _ = writeln!(
                            out,
                            "    {}:{}: {} → {}",
                            file.path,
                            change.line,
                            change.old.trim(),
                            change.new.trim()
                        );
                    }
                }
            }
        }
        print_rollback(line, out);
        for skipped in &line.skipped_files {
            eprintln!("    note: {skipped}");
        }
        for held in &line.held {
            println!("    note: {}", held.reason);
        }
    }
    let bumps = report.bumps().count();
    let failed = report
        .policies
        .iter()
        .filter(|p| matches!(p.outcome, PolicyOutcome::Failed { .. }))
        .count();
    let failed = match failed {
        0 => String::new(),
        n => format!(", {n} of {} policies failed", report.policies.len()),
    };
    let r = &report.requests;
    if report.dry_run {
        let _ = writeln!(
            out,
            "{bumps} bump(s) found{failed}; nothing was pushed (dry run). Registry requests: {}",
            r.registry_requests
        );
    } else {
        let _ = writeln!(
            out,
            "{bumps} bump(s){failed}; {} branch push(es). Requests: registry {}, GitHub {}",
            r.git_pushes, r.registry_requests, r.github_requests
        );
    }
}

/// What the rollback rule said, under the policy's line.
fn print_rollback(line: &PolicyReport, out: &mut dyn std::io::Write) {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    match &line.rollback {
        None => {}
        Some(RollbackDecision::Waiting {
            failed,
            pr,
            degraded_since,
            due,
        }) => {
            let _ = writeln!(
                out,
                "    rollback: Degraded since {} after #{pr} brought {failed}; the revert is due at {} unless it recovers",
                time(degraded_since),
                time(due)
            );
        }
        Some(RollbackDecision::RollBack(revert)) => {
            let _ = writeln!(
                out,
                "    rollback: Degraded since {} after #{} brought {}: back to {}",
                time(&revert.degraded_since),
                revert.pr,
                revert.failed,
                revert.to
            );
            for object in revert.unhealthy.iter().take(10) {
                let _ = writeln!(
                    out,
                    "      {}: {} — {}",
                    object.object,
                    object.health.as_str(),
                    object.reason
                );
            }
        }
        Some(RollbackDecision::Blocked { failed, reason }) => {
            let _ = writeln!(out, "    rollback of {failed} not possible: {reason}");
        }
    }
}

fn describe(outcome: &PolicyOutcome, merge: Option<&MergeState>) -> String {
    let pr = match outcome {
        PolicyOutcome::WouldBump
        | PolicyOutcome::WouldRevert
        | PolicyOutcome::HeldAfterRollback { .. }
        | PolicyOutcome::UpToDate
        | PolicyOutcome::Failed { .. } => {
            return String::new();
        }
        PolicyOutcome::Proposed { pr, url } => format!("opened #{pr} {url}"),
        PolicyOutcome::Updated { pr, url } => format!("updated #{pr} {url}"),
        PolicyOutcome::Unchanged { pr, url } => format!("#{pr} already current {url}"),
        PolicyOutcome::SkippedHumanClosed { pr } => {
            format!("skipped: #{pr} was closed by a person")
        }
        PolicyOutcome::AlreadyMerged { pr } => format!("already merged in #{pr}"),
    };
    let merge = match merge {
        None | Some(MergeState::Disabled) => String::new(),
        Some(MergeState::HeldDegraded { application }) => {
            format!("; not merged: {application} is Degraded")
        }
        Some(MergeState::AlreadyEnabled | MergeState::AutoMergeEnabled) => "; auto-merge on".into(),
        Some(MergeState::Merged { sha }) => format!("; merged {}", &sha[..sha.len().min(12)]),
        Some(MergeState::WaitingForChecks { pending }) => {
            format!("; waiting for checks: {}", pending.join(", "))
        }
        Some(MergeState::ChecksFailed { failing }) => {
            format!("; checks failed: {}", failing.join(", "))
        }
        Some(MergeState::Failed { error }) => format!("; merge failed: {error}"),
    };
    format!(" — {pr}{merge}")
}
