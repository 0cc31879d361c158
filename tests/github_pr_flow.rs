//! The whole version-bump PR flow against the GitHub double, backed by a real
//! bare git repository so merges are real commits: decide → create/update →
//! supersede → merge (auto-merge, direct merge on "clean status", or merge
//! after checks when auto-merge is unavailable).

#[path = "support/github_double.rs"]
mod github_double;

use std::path::Path;
use std::time::Duration;

use github_double::{GitHubDouble, eventually};
use relbot::release::github::*;

const REPO: &str = "acme/cluster-config";
const POLICY: &str = "django-api";
const FILE: &str = "manifests/ahuora/deploy.yaml";

/// A bare repository with `main` holding the manifest at 0.0.17.
fn bare_repo(dir: &Path) -> git2::Repository {
    let repo = git2::Repository::init_bare(dir).unwrap();
    commit_manifest(&repo, "main", None, "0.0.17", "initial");
    repo
}

fn manifest(version: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: docker.io/ahuora/django-api:{version} # pinned by relbot\n"
    )
}

/// One commit on `branch` (parent: `parent`, else the branch's tip) whose
/// tree holds the manifest at `version`; force-moves the branch like a push.
fn commit_manifest(
    repo: &git2::Repository,
    branch: &str,
    parent: Option<git2::Oid>,
    version: &str,
    message: &str,
) -> String {
    let blob = repo.blob(manifest(version).as_bytes()).unwrap();
    let mut ahuora = repo.treebuilder(None).unwrap();
    ahuora.insert("deploy.yaml", blob, 0o100644).unwrap();
    let ahuora = ahuora.write().unwrap();
    let mut manifests = repo.treebuilder(None).unwrap();
    manifests.insert("ahuora", ahuora, 0o040000).unwrap();
    let manifests = manifests.write().unwrap();
    let mut root = repo.treebuilder(None).unwrap();
    root.insert("manifests", manifests, 0o040000).unwrap();
    let tree = repo.find_tree(root.write().unwrap()).unwrap();
    let sig = git2::Signature::now("relbot", "relbot@users.noreply.github.com").unwrap();
    let parent = parent.map(|p| repo.find_commit(p).unwrap());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, message, &tree, &parents)
        .unwrap();
    repo.reference(&format!("refs/heads/{branch}"), oid, true, "push")
        .unwrap();
    oid.to_string()
}

fn main_tip(repo: &git2::Repository) -> git2::Oid {
    repo.find_reference("refs/heads/main")
        .unwrap()
        .target()
        .unwrap()
}

fn file_on_main(repo: &git2::Repository) -> String {
    let commit = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let entry = commit.tree().unwrap().get_path(Path::new(FILE)).unwrap();
    String::from_utf8(repo.find_blob(entry.id()).unwrap().content().to_vec()).unwrap()
}

/// What `release/bump.rs` will do for one policy, driven by the client.
struct Bumper {
    client: GitHubClient,
    base: String,
}

impl Bumper {
    fn spec(&self, old: &str, new: &str) -> PullSpec {
        PullSpec {
            title: format!("chore(deps): update {POLICY} to {new}"),
            body: format!(
                "Updates `docker.io/ahuora/django-api` {old} → {new}.\n\n```diff\n-image: docker.io/ahuora/django-api:{old}\n+image: docker.io/ahuora/django-api:{new}\n```\n\n{}",
                PrMarker::new(POLICY, new).render()
            ),
            head: branch_for_policy(POLICY),
            base: self.base.clone(),
            labels: vec!["relbot".into()],
        }
    }

    /// Runs the decision and carries it out; returns the plan and the PR
    /// relbot now owns (if any).
    async fn run(&self, old: &str, new: &str) -> (PrPlan, Option<PullRequestInfo>) {
        let mut pulls = self
            .client
            .find_pulls_for_branch(&branch_for_policy(POLICY), PrStateFilter::All)
            .await
            .unwrap();
        let known: Vec<u64> = pulls.iter().map(|p| p.number).collect();
        pulls.extend(
            self.client
                .list_open_pulls()
                .await
                .unwrap()
                .into_iter()
                .filter(|p| !known.contains(&p.number)),
        );
        let plan = decide(POLICY, new, &self.base, &pulls);
        let spec = self.spec(old, new);
        let kept = match plan.action {
            PrAction::Create => Some(self.client.create_pull(&spec).await.unwrap().pull),
            PrAction::UpdateInPlace { number, .. } => Some(
                self.client
                    .update_pull(number, &spec.title, &spec.body)
                    .await
                    .unwrap(),
            ),
            PrAction::SkipHumanClosed { .. } | PrAction::SkipAlreadyMerged { .. } => None,
        };
        if let Some(kept) = &kept {
            for number in &plan.supersede {
                let stale = pulls.iter().find(|p| p.number == *number).unwrap();
                self.client
                    .supersede_pull(stale, kept.number)
                    .await
                    .unwrap();
            }
        }
        (plan, kept)
    }
}

async fn setup(dir: &Path) -> (GitHubDouble, git2::Repository, Bumper) {
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    let repo = bare_repo(dir);
    gh.attach_git(REPO, dir);
    let client = GitHubClient::new(gh.client_settings(REPO)).unwrap();
    (
        gh,
        repo,
        Bumper {
            client,
            base: "main".into(),
        },
    )
}

#[tokio::test]
async fn github_flow_first_bump_opens_one_pr_with_auto_merge_then_github_merges_it() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let head = commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "chore(deps): update django-api to 0.0.18",
    );

    let (plan, pr) = bot.run("0.0.17", "0.0.18").await;
    assert_eq!(
        plan,
        PrPlan {
            action: PrAction::Create,
            supersede: vec![]
        }
    );
    let pr = pr.unwrap();
    assert_eq!(pr.head_sha, head);
    assert_eq!(
        bot.client
            .request_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        MergeOutcome::AutoMergeEnabled
    );
    assert_eq!(gh.open_pulls(REPO).len(), 1);
    assert_eq!(
        gh.pull(REPO, pr.number).auto_merge.as_deref(),
        Some("squash")
    );

    // CI passes; GitHub merges on its own.
    gh.set_status(REPO, &head, "ci/test", "success");
    assert!(eventually(Duration::from_secs(2), || gh.pull(REPO, pr.number).merged).await);
    assert_eq!(gh.merges(REPO)[0].via, "auto-merge");
    assert!(
        file_on_main(&repo).contains("django-api:0.0.18 # pinned by relbot"),
        "a real squash commit on main"
    );
    let squash = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert_eq!(
        squash.message().unwrap(),
        "chore(deps): update django-api to 0.0.18 (#1)"
    );
    assert_eq!(squash.parent_count(), 1);
}

#[tokio::test]
async fn github_flow_newer_tag_updates_the_same_pr() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "bump 0.0.18",
    );
    let (_, first) = bot.run("0.0.17", "0.0.18").await;
    let first = first.unwrap();

    // 0.0.19 appears: the branch is force-pushed and the same PR edited.
    let new_head = commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.19",
        "bump 0.0.19",
    );
    let (plan, second) = bot.run("0.0.17", "0.0.19").await;
    assert_eq!(
        plan.action,
        PrAction::UpdateInPlace {
            number: first.number,
            previous_version: Some("0.0.18".into())
        }
    );
    let second = second.unwrap();
    assert_eq!(second.number, first.number);
    assert_eq!(second.head_sha, new_head);
    assert_eq!(second.title, "chore(deps): update django-api to 0.0.19");
    assert!(second.body.contains("0.0.17 → 0.0.19"));
    assert_eq!(gh.pulls(REPO).len(), 1, "no second PR was ever opened");
}

#[tokio::test]
async fn github_flow_superseded_pr_is_closed_with_a_comment() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    // A PR from relbot's old branch naming, still open for 0.0.16.
    commit_manifest(
        &repo,
        "relbot/django-api-0.0.16",
        Some(main_tip(&repo)),
        "0.0.16",
        "bump 0.0.16",
    );
    let legacy_body = format!("old bump\n\n{}", PrMarker::new(POLICY, "0.0.16").render());
    let legacy = gh.seed_pull(
        REPO,
        "relbot[bot]",
        "relbot/django-api-0.0.16",
        "main",
        "update django-api to 0.0.16",
        &legacy_body,
    );

    commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "bump 0.0.18",
    );
    let (plan, kept) = bot.run("0.0.17", "0.0.18").await;
    let kept = kept.unwrap();
    assert_eq!(
        plan,
        PrPlan {
            action: PrAction::Create,
            supersede: vec![legacy]
        }
    );
    let closed = gh.pull(REPO, legacy);
    assert_eq!(closed.state, "closed");
    assert!(!closed.merged);
    assert_eq!(
        closed.comments,
        vec![format!(
            "Superseded by #{} (django-api 0.0.16); closing. — relbot",
            kept.number
        )]
    );
    assert_eq!(
        gh.open_pulls(REPO)
            .iter()
            .map(|p| p.number)
            .collect::<Vec<_>>(),
        vec![kept.number]
    );

    // Relbot's own closing is not mistaken for a human's next time round.
    let (plan, _) = bot.run("0.0.17", "0.0.18").await;
    assert_eq!(
        plan,
        PrPlan {
            action: PrAction::UpdateInPlace {
                number: kept.number,
                previous_version: Some("0.0.18".into())
            },
            supersede: vec![]
        }
    );
}

#[tokio::test]
async fn github_flow_human_closed_pr_stays_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "bump 0.0.18",
    );
    let (_, pr) = bot.run("0.0.17", "0.0.18").await;
    let pr = pr.unwrap();
    gh.close_pull_as_human(REPO, pr.number);
    gh.clear_requests();

    let (plan, kept) = bot.run("0.0.17", "0.0.18").await;
    assert_eq!(plan.action, PrAction::SkipHumanClosed { number: pr.number });
    assert!(kept.is_none());
    assert!(
        gh.requests().iter().all(|r| r.method == "GET"),
        "only reads: {:?}",
        gh.request_lines()
    );
    assert_eq!(gh.pull(REPO, pr.number).state, "closed");

    // A newer version is a new proposal.
    commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.19",
        "bump 0.0.19",
    );
    let (plan, kept) = bot.run("0.0.17", "0.0.19").await;
    assert_eq!(plan.action, PrAction::Create);
    assert_ne!(kept.unwrap().number, pr.number);
    assert_eq!(gh.pull(REPO, pr.number).state, "closed");
}

#[tokio::test]
async fn github_flow_clean_status_falls_back_to_direct_merge_with_head_sha() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let head = commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "bump 0.0.18",
    );
    gh.set_status(REPO, &head, "ci/test", "success");
    let (_, pr) = bot.run("0.0.17", "0.0.18").await;
    let pr = pr.unwrap();

    let outcome = bot
        .client
        .request_merge(&pr, MergeMethod::Merge)
        .await
        .unwrap();
    let MergeOutcome::Merged { sha } = outcome else {
        panic!("expected a direct merge, got {outcome:?}")
    };
    assert_eq!(sha, main_tip(&repo).to_string());
    let put = gh
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.body.unwrap()["sha"], head.as_str());
    assert_eq!(gh.merges(REPO)[0].via, "api");
    let merge_commit = repo.find_commit(main_tip(&repo)).unwrap();
    assert_eq!(
        merge_commit.parent_count(),
        2,
        "merge method produced a merge commit"
    );
    assert!(file_on_main(&repo).contains("django-api:0.0.18"));
    assert_eq!(bot.client.stats().snapshot().prs_merged, 1);
}

#[tokio::test]
async fn github_flow_without_auto_merge_merges_after_required_checks_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    gh.set_allow_auto_merge(REPO, false);
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let head = commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "bump 0.0.18",
    );
    let (_, pr) = bot.run("0.0.17", "0.0.18").await;
    let pr = pr.unwrap();

    let outcome = bot
        .client
        .request_merge(&pr, MergeMethod::Squash)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::WaitingForChecks {
            pending: vec!["ci/test".into()]
        }
    );
    assert!(!gh.pull(REPO, pr.number).merged);

    gh.set_status(REPO, &head, "ci/test", "failure");
    let outcome = bot
        .client
        .request_merge(&pr, MergeMethod::Squash)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::ChecksFailed {
            failing: vec!["ci/test".into()]
        }
    );

    gh.set_status(REPO, &head, "ci/test", "success");
    let outcome = bot
        .client
        .request_merge(&pr, MergeMethod::Squash)
        .await
        .unwrap();
    assert!(
        matches!(outcome, MergeOutcome::Merged { .. }),
        "{outcome:?}"
    );
    assert!(gh.pull(REPO, pr.number).merged);
    assert!(file_on_main(&repo).contains("django-api:0.0.18"));
}

#[tokio::test]
async fn github_flow_merged_bump_is_not_reproposed() {
    let dir = tempfile::tempdir().unwrap();
    let (gh, repo, bot) = setup(dir.path()).await;
    commit_manifest(
        &repo,
        "relbot/django-api",
        Some(main_tip(&repo)),
        "0.0.18",
        "bump 0.0.18",
    );
    let (_, pr) = bot.run("0.0.17", "0.0.18").await;
    let pr = pr.unwrap();
    assert!(matches!(
        bot.client
            .request_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        MergeOutcome::Merged { .. }
    ));
    let (plan, kept) = bot.run("0.0.17", "0.0.18").await;
    assert_eq!(
        plan.action,
        PrAction::SkipAlreadyMerged { number: pr.number }
    );
    assert!(kept.is_none());
    assert_eq!(gh.pulls(REPO).len(), 1);
}
