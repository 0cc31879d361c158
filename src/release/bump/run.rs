//! One bump run end to end, for the CLI and the server: scan every policy,
//! then (unless dry-run) publish each bump as a branch and a pull request
//! and request its merge. Policies are handled one at a time; one failing
//! does not stop the others.

use std::path::Path;

use super::health::blocks_merge;
use super::plan::{PolicyScan, plan_bumps, plan_revert};
use super::publisher::Publisher;
use super::pull::RevertReason;
use super::report::{
    BumpOptions, BumpReport, MergeState, PolicyOutcome, PolicyReport, RequestCounts,
};
use super::rollback::{
    Revert, RollbackDecision, RollbackInput, decide_rollback, held_version, is_held,
    last_merged_bump,
};
use super::summary::{render_application, summarize};
use super::{BumpError, BumpPlan, pull};
use crate::cluster::health::HealthStatus;
use crate::config::{Config, ImagePolicy, LoadedConfig, MergeMethod};
use crate::progress::{Progress, ProgressEvent};
use crate::release::github::{
    GitHubClient, MergeOutcome, PrAction, PrState, PrStateFilter, PullRequestInfo, PullSpec,
    branch_for_policy, decide, decide_revert,
};
use crate::release::registry::RegistryClient;

/// A run over the configuration. `root` is the tree to scan: the `--source`
/// directory for a dry-run; ignored when publishing (the workspace's fresh
/// checkout of the base branch is scanned instead, so plans start from the
/// branch the PRs target).
///
/// Before a policy's bump is published, the rollback rule is asked (only
/// when its application is Degraded, so a healthy run costs no extra
/// request): a revert replaces the bump. A bump at or below a version a
/// merged revert undid is held back.
pub async fn run_bumps(
    loaded: &LoadedConfig,
    root: &Path,
    registry: &RegistryClient,
    publisher: Option<&Publisher<'_>>,
    options: &BumpOptions,
) -> Result<BumpReport, BumpError> {
    let before_registry = registry.stats().snapshot();
    let policies: Vec<ImagePolicy> = loaded.policies.iter().map(|p| p.policy.clone()).collect();
    for name in &options.only {
        if !policies.iter().any(|p| p.name() == name) {
            return Err(BumpError::Settings(format!(
                "no ImagePolicy named {name:?}; known: {}",
                policies
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }

    let progress = &options.progress;
    let publishing = publisher.filter(|_| !options.dry_run);
    let (scan_root, base_revision) = match publishing {
        Some(p) => {
            progress.emit(|| ProgressEvent::FetchingBase);
            let workspace = p.workspace.clone();
            let checkout = blocking(move || workspace.sync()).await?;
            (checkout.path, Some(checkout.revision))
        }
        None => (root.to_path_buf(), None),
    };
    let scans = plan_bumps(&scan_root, &policies, &options.only, registry, progress).await;

    let mut report = BumpReport {
        dry_run: publishing.is_none(),
        policies: Vec::new(),
        requests: RequestCounts::default(),
    };
    let github_before = publishing.map(|p| p.github.stats().snapshot().requests);
    let mut open_pulls: Option<Vec<PullRequestInfo>> = None;
    for (policy, scan) in scans {
        let mut line = match scan {
            Ok(scan) => report_line(&policy, scan),
            Err(error) => PolicyReport {
                policy: policy.name().to_string(),
                image: policy.spec.image.clone(),
                current: Vec::new(),
                bump: None,
                outcome: PolicyOutcome::Failed {
                    error: error.to_string(),
                },
                merge: None,
                pushed: false,
                skipped_files: Vec::new(),
                held: Vec::new(),
                rollback: None,
            },
        };
        let mut history: Option<Vec<PullRequestInfo>> = None;
        let mut revert: Option<RevertOf> = None;
        if let Some(reader) =
            publisher.filter(|_| !matches!(line.outcome, PolicyOutcome::Failed { .. }))
        {
            // A PR kept open on the policy's branch was opened after any
            // revert there, so the closed list cannot hold this bump back.
            let mut keeper_open = false;
            if let (Some(publisher), Some(_)) = (publishing, &line.bump) {
                match list_open_pulls_once(&publisher.github, &mut open_pulls).await {
                    Ok(pulls) => {
                        let branch = branch_for_policy(policy.name());
                        keeper_open = pulls.iter().any(|p| p.head_ref == branch);
                    }
                    Err(error) => {
                        line.outcome = PolicyOutcome::Failed {
                            error: error.to_string(),
                        };
                        report.policies.push(line);
                        continue;
                    }
                }
            }
            let guard = GuardContext {
                root: &scan_root,
                policy: &policy,
                registry,
                publishing: publishing.is_some(),
                keeper_open,
            };
            match guard_policy(reader, &guard, &mut line, &mut history).await {
                Ok(found) => revert = found,
                Err(error) => {
                    line.outcome = PolicyOutcome::Failed {
                        error: error.to_string(),
                    };
                    line.bump = None;
                }
            }
        }
        if let (Some(publisher), Some(base_revision), Some(plan)) =
            (publishing, &base_revision, line.bump.clone())
        {
            if let Err(error) = list_open_pulls_once(&publisher.github, &mut open_pulls).await {
                line.outcome = PolicyOutcome::Failed {
                    error: error.to_string(),
                };
                report.policies.push(line);
                continue;
            }
            let context = PublishContext {
                config: &loaded.config,
                checkout: &scan_root,
                base_revision,
                policy: &policy,
                plan: &plan,
                revert: revert.as_ref(),
            };
            let pulls = open_pulls.as_mut().expect("listed above");
            if let Err(error) = publish(
                publisher,
                &context,
                pulls,
                &mut history,
                &mut line,
                progress,
            )
            .await
            {
                tracing::warn!(policy = %policy.name(), %error, "publishing the bump failed");
                line.outcome = PolicyOutcome::Failed {
                    error: error.to_string(),
                };
            }
        }
        progress.emit(|| ProgressEvent::PolicyFinished {
            policy: policy.name().to_string(),
        });
        report.policies.push(line);
    }

    let registry_now = registry.stats().snapshot();
    report.requests = RequestCounts {
        registry_requests: registry_now.requests - before_registry.requests,
        registry_token_requests: registry_now.token_requests - before_registry.token_requests,
        registry_pages: registry_now.pages - before_registry.pages,
        registry_not_modified: registry_now.not_modified - before_registry.not_modified,
        github_requests: match (publishing, github_before) {
            (Some(p), Some(before)) => p.github.stats().snapshot().requests - before,
            _ => 0,
        },
        git_pushes: report.policies.iter().filter(|p| p.pushed).count() as u64,
    };
    Ok(report)
}

fn report_line(policy: &ImagePolicy, scan: PolicyScan) -> PolicyReport {
    let outcome = match scan.plan {
        Some(_) => PolicyOutcome::WouldBump,
        None => PolicyOutcome::UpToDate,
    };
    PolicyReport {
        policy: policy.name().to_string(),
        image: scan.image,
        current: scan.current,
        bump: scan.plan,
        outcome,
        merge: None,
        pushed: false,
        skipped_files: scan.skipped,
        held: scan.held,
        rollback: None,
    }
}

/// What [`guard_policy`] needs besides the publisher.
struct GuardContext<'a> {
    root: &'a Path,
    policy: &'a ImagePolicy,
    registry: &'a RegistryClient,
    publishing: bool,
    /// An open PR is kept on the policy's branch (see `publish`).
    keeper_open: bool,
}

/// The revert a policy's line carries instead of a bump, and the
/// application it is for.
struct RevertOf {
    application: String,
    revert: Revert,
}

/// Rollback, then hold, for one policy's line. Reads the policy branch's
/// closed PRs into `history` when it needs them (a Degraded application,
/// or a bump that a merged revert might hold back).
async fn guard_policy(
    reader: &Publisher<'_>,
    cx: &GuardContext<'_>,
    line: &mut PolicyReport,
    history: &mut Option<Vec<PullRequestInfo>>,
) -> Result<Option<RevertOf>, BumpError> {
    let name = cx.policy.name();
    let branch = branch_for_policy(name);
    let spec = &cx.policy.spec;
    let observation = spec
        .application
        .as_deref()
        .and_then(|app| reader.health.observe(app));
    if let (Some(application), Some(observed)) = (&spec.application, &observation)
        && spec.rollback.enabled
        && observed.health == HealthStatus::Degraded
    {
        let closed = closed_pulls(&reader.github, &branch, history).await?;
        let bump = last_merged_bump(name, closed);
        let synced_holds_merge = match (&bump, &observed.revision, cx.publishing) {
            (Some(bump), Some(revision), true) => bump
                .merge_commit
                .as_deref()
                .and_then(|merge| reader.workspace.contains(revision, merge)),
            _ => None,
        };
        let decision = decide_rollback(&RollbackInput {
            settings: spec.rollback,
            bump: bump.as_ref(),
            current: &line.current,
            observation: Some(observed),
            synced_holds_merge,
            now: chrono::Utc::now(),
        });
        line.rollback = decision.clone();
        if let Some(RollbackDecision::RollBack(revert)) = decision
            && let Some(plan) =
                plan_revert(cx.root, cx.policy, &revert.failed, &revert.to, cx.registry).await?
        {
            let (failed, to) = (&revert.failed, &revert.to);
            tracing::info!(policy = %name, %application, %failed, %to, "application Degraded since the bump: proposing a revert");
            line.bump = Some(plan);
            line.outcome = PolicyOutcome::WouldRevert;
            return Ok(Some(RevertOf {
                application: application.clone(),
                revert,
            }));
        }
    }
    let Some(plan) = &line.bump else {
        return Ok(None);
    };
    if cx.keeper_open {
        return Ok(None);
    }
    let closed = closed_pulls(&reader.github, &branch, history).await?;
    if let Some(failed) = held_version(name, closed)
        && is_held(&plan.to, &failed)
    {
        tracing::info!(policy = %name, wanted = %plan.to, %failed, "held back: a revert undid this version; a newer tag lifts the hold");
        line.outcome = PolicyOutcome::HeldAfterRollback {
            failed,
            wanted: plan.to.clone(),
        };
        line.bump = None;
    }
    Ok(None)
}

/// The repository's open PRs, listed once per run and only when needed.
async fn list_open_pulls_once<'p>(
    github: &GitHubClient,
    open_pulls: &'p mut Option<Vec<PullRequestInfo>>,
) -> Result<&'p mut Vec<PullRequestInfo>, crate::release::github::GitHubError> {
    if open_pulls.is_none() {
        *open_pulls = Some(github.list_open_pulls().await?);
    }
    Ok(open_pulls.as_mut().expect("listed above"))
}

/// The policy branch's closed PRs, read once per policy per run.
async fn closed_pulls<'h>(
    github: &GitHubClient,
    branch: &str,
    history: &'h mut Option<Vec<PullRequestInfo>>,
) -> Result<&'h [PullRequestInfo], BumpError> {
    if history.is_none() {
        *history = Some(
            github
                .find_pulls_for_branch(branch, PrStateFilter::Closed)
                .await?,
        );
    }
    Ok(history.as_deref().unwrap_or_default())
}

struct PublishContext<'a> {
    config: &'a Config,
    checkout: &'a Path,
    base_revision: &'a str,
    policy: &'a ImagePolicy,
    plan: &'a BumpPlan,
    /// Set when the plan is a revert.
    revert: Option<&'a RevertOf>,
}

/// Branch, PR, supersede, merge for one policy. `open_pulls` is the run's
/// list, kept current as PRs are opened and closed.
async fn publish(
    publisher: &Publisher<'_>,
    cx: &PublishContext<'_>,
    open_pulls: &mut Vec<PullRequestInfo>,
    history: &mut Option<Vec<PullRequestInfo>>,
    line: &mut PolicyReport,
    progress: &Progress,
) -> Result<(), BumpError> {
    let github = &publisher.github;
    let github_config = cx.config.github.clone().ok_or_else(|| {
        BumpError::Settings(
            "relbot.yaml has no `github:` section; bump PRs need github.repository".into(),
        )
    })?;
    let base = github_config
        .base_branch
        .clone()
        .or_else(|| cx.config.repo.as_ref().map(|r| r.branch.clone()))
        .unwrap_or_else(|| "main".into());
    let name = cx.policy.name();
    let branch = branch_for_policy(name);

    // Closed PRs only matter for this policy's branch (human-closed ones),
    // and only when no open PR is kept there: relbot never opens a PR on
    // the branch for a version a person closed, so with a keeper open the
    // closed list cannot change the decision. A no-op run costs no request.
    let mut pulls: Vec<PullRequestInfo> = open_pulls.clone();
    let has_keeper = open_pulls
        .iter()
        .any(|p| p.head_ref == branch && p.base_ref == base);
    if !has_keeper {
        pulls.extend_from_slice(closed_pulls(github, &branch, history).await?);
    }
    let decision = match cx.revert {
        None => decide(name, &cx.plan.to, &base, &pulls),
        Some(of) => decide_revert(name, &of.revert.failed, &base, &pulls),
    };
    match decision.action {
        PrAction::SkipHumanClosed { number } => {
            line.outcome = PolicyOutcome::SkippedHumanClosed { pr: number };
            return Ok(());
        }
        PrAction::SkipAlreadyMerged { number } => {
            line.outcome = PolicyOutcome::AlreadyMerged { pr: number };
            return Ok(());
        }
        PrAction::Create | PrAction::UpdateInPlace { .. } => {}
    }

    let (title, body) = match cx.revert {
        None => {
            let summary = cx
                .policy
                .spec
                .application
                .as_deref()
                .map(|app| application_summary(cx.checkout, cx.config, app, cx.plan));
            (
                pull::title(cx.plan),
                pull::body(cx.plan, summary.as_deref()),
            )
        }
        Some(of) => {
            let why = RevertReason {
                application: &of.application,
                bump_pr: of.revert.pr,
                degraded_since: of.revert.degraded_since,
                grace: cx.policy.spec.rollback.grace_period.0,
                unhealthy: &of.revert.unhealthy,
            };
            (
                pull::revert_title(cx.plan),
                pull::revert_body(cx.plan, &why),
            )
        }
    };

    progress.emit(|| ProgressEvent::RewritingFiles {
        policy: name.to_string(),
        files: cx.plan.files.len(),
    });
    let prepared = {
        let workspace = publisher.workspace.clone();
        let (base, branch, files) = (
            cx.base_revision.to_string(),
            branch.clone(),
            cx.plan.files.clone(),
        );
        let (author, message) = (github_config.commit_author.clone(), title.clone());
        blocking(move || workspace.prepare(&base, &branch, &files, &author, &message)).await?
    };
    if prepared.needs_push {
        progress.emit(|| ProgressEvent::PushingBranch {
            policy: name.to_string(),
            branch: branch.clone(),
        });
        let workspace = publisher.workspace.clone();
        let to_push = prepared.clone();
        blocking(move || workspace.push(&to_push)).await?;
        line.pushed = true;
    }

    progress.emit(|| ProgressEvent::OpeningPullRequest {
        policy: name.to_string(),
        update: !matches!(decision.action, PrAction::Create),
    });
    let mut pull = match decision.action {
        PrAction::Create => {
            let created = github
                .create_pull(&PullSpec {
                    title: title.clone(),
                    body: body.clone(),
                    head: branch.clone(),
                    base: base.clone(),
                    labels: github_config.labels.clone(),
                })
                .await?;
            let pull = created.pull;
            line.outcome = PolicyOutcome::Proposed {
                pr: pull.number,
                url: pull.html_url.clone(),
            };
            pull
        }
        PrAction::UpdateInPlace { number, .. } => {
            let existing = open_pulls
                .iter()
                .find(|p| p.number == number)
                .cloned()
                .ok_or_else(|| {
                    BumpError::Settings(format!("PR #{number} vanished from the open list"))
                })?;
            if existing.title == title && existing.body == body {
                line.outcome = if line.pushed {
                    PolicyOutcome::Updated {
                        pr: number,
                        url: existing.html_url.clone(),
                    }
                } else {
                    PolicyOutcome::Unchanged {
                        pr: number,
                        url: existing.html_url.clone(),
                    }
                };
                existing
            } else {
                let updated = github.update_pull(number, &title, &body).await?;
                line.outcome = PolicyOutcome::Updated {
                    pr: number,
                    url: updated.html_url.clone(),
                };
                updated
            }
        }
        PrAction::SkipHumanClosed { .. } | PrAction::SkipAlreadyMerged { .. } => unreachable!(),
    };
    // What we pushed is the head, whatever a listing said before the push.
    pull.head_sha = prepared.commit.clone();

    for number in &decision.supersede {
        if let Some(stale) = open_pulls.iter().find(|p| p.number == *number).cloned() {
            github.supersede_pull(&stale, pull.number).await?;
        }
    }
    open_pulls.retain(|p| !decision.supersede.contains(&p.number) && p.number != pull.number);
    open_pulls.push(pull.clone());

    line.merge = Some(
        merge(
            publisher,
            cx.policy,
            github_config.automerge,
            github_config.merge_method,
            &pull,
            cx.revert.is_none(),
            progress,
        )
        .await,
    );
    Ok(())
}

/// At most one merge request per policy per run, never when GitHub already
/// has auto-merge on, and never for a bump into a Degraded application
/// (`gate`; a revert is not gated: it is what mends the application).
async fn merge(
    publisher: &Publisher<'_>,
    policy: &ImagePolicy,
    automerge_default: bool,
    method: MergeMethod,
    pull: &PullRequestInfo,
    gate: bool,
    progress: &Progress,
) -> MergeState {
    if !policy.spec.automerge.unwrap_or(automerge_default) {
        return MergeState::Disabled;
    }
    if gate
        && let Some(app) = &policy.spec.application
        && publisher.health.health(app).is_some_and(blocks_merge)
    {
        tracing::info!(policy = %policy.name(), application = %app, "application is Degraded; not merging");
        return MergeState::HeldDegraded {
            application: app.clone(),
        };
    }
    if pull.auto_merge_enabled {
        return MergeState::AlreadyEnabled;
    }
    if pull.state != PrState::Open {
        return MergeState::Failed {
            error: format!("PR #{} is not open", pull.number),
        };
    }
    progress.emit(|| ProgressEvent::RequestingMerge {
        policy: policy.name().to_string(),
        pr: pull.number,
    });
    match publisher.github.request_merge(pull, method).await {
        Ok(MergeOutcome::AutoMergeEnabled) => MergeState::AutoMergeEnabled,
        Ok(MergeOutcome::Merged { sha }) => MergeState::Merged { sha },
        Ok(MergeOutcome::WaitingForChecks { pending }) => MergeState::WaitingForChecks { pending },
        Ok(MergeOutcome::ChecksFailed { failing }) => MergeState::ChecksFailed { failing },
        Err(error) => MergeState::Failed {
            error: error.to_string(),
        },
    }
}

/// Renders the application before and after writing the plan's files into
/// the checkout, then puts the original files back (the checkout is shared
/// by every policy of the run).
fn application_summary(root: &Path, config: &Config, application: &str, plan: &BumpPlan) -> String {
    let before = render_application(root, config, application);
    let mut originals = Vec::new();
    for file in &plan.files {
        let path = root.join(&file.path);
        match std::fs::read(&path) {
            Ok(old) => {
                if std::fs::write(&path, &file.new_text).is_err() {
                    break;
                }
                originals.push((path, old));
            }
            Err(_) => break,
        }
    }
    let summary = if originals.len() == plan.files.len() {
        let after = render_application(root, config, application);
        summarize(application, &before, &after)
    } else {
        format!("`{application}` could not be rendered with this change applied.")
    };
    for (path, old) in originals {
        let _ = std::fs::write(path, old);
    }
    summary
}

/// libgit2 blocks: run it off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BumpError> + Send + 'static,
) -> Result<T, BumpError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BumpError::Workspace {
            action: "git work".into(),
            detail: format!("the worker stopped: {e}"),
        })?
}
