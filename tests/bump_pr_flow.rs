//! `relbot bump` end to end: the real `docker-registry` seeded with the
//! samples' tags, a real bare git repository holding the sample tree, and
//! the stateful GitHub double attached to it (merges are real commits).
//!
//! First run opens one PR with auto-merge and a pushed branch of one
//! commit; a newer tag updates the same PR (force-push, same number); a
//! re-run with nothing new writes nothing (no POST/PATCH/PUT, ref
//! unchanged); a PR a person closed stays closed; a Degraded application
//! gets no merge.

#[path = "support/bump_samples.rs"]
mod bump_samples;
#[path = "support/git.rs"]
mod git_support;
#[path = "support/github_double.rs"]
mod github_double;
#[path = "support/registry.rs"]
mod registry_support;

use bump_samples::{SAMPLE_TAGS, write_sample_tree};
use git_support::{BareRepo, TestRepo};
use github_double::GitHubDouble;
use registry_support::{Auth, Media, RealRegistry};
use relbot::config::LoadedConfig;
use relbot::release::bump::{
    AppHealth, BumpOptions, BumpReport, HealthSource, MergeState, NoHealth, PolicyOutcome,
    Publisher, StaticHealth, Workspace, run_bumps,
};
use relbot::release::github::{GitHubClient, PrMarker};
use relbot::release::registry::{RegistryClient, RegistryCredentials, RegistrySettings};
use relbot::source::git::GitCredentials;

const REPO: &str = "ahuora/cluster-config";

struct World {
    registry: RealRegistry,
    client: RegistryClient,
    bare: BareRepo,
    gh: GitHubDouble,
    github: GitHubClient,
    workspace: Workspace,
    loaded: LoadedConfig,
    _work: TestRepo,
    _cache: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        let registry = RealRegistry::start(Auth::Anonymous).await;
        for (repository, tags) in SAMPLE_TAGS {
            registry.seed(repository, tags, Media::Docker).await;
        }
        let mut settings = RegistrySettings::default();
        settings.set_host("docker.io", Some(&registry.host), false);
        let client = RegistryClient::new(settings, RegistryCredentials::anonymous()).unwrap();

        let bare = BareRepo::new("cluster-config");
        let work = TestRepo::new();
        write_sample_tree(work.path(), "");
        let config = std::fs::read_to_string(work.path().join("relbot.yaml")).unwrap();
        let config = config.replace("https://github.com/ahuora/cluster-config.git", &bare.url());
        std::fs::write(work.path().join("relbot.yaml"), config).unwrap();
        work.commit("initial sample tree");
        work.push_to(&bare, "main");

        let gh = GitHubDouble::start().await;
        gh.add_repo(REPO, "main");
        gh.attach_git(REPO, bare.path());
        // CI must pass before GitHub merges: auto-merge waits.
        gh.set_required_checks(REPO, "main", &["ci/test"]);
        let github = GitHubClient::new(gh.client_settings(REPO)).unwrap();

        let loaded = relbot::config::load(&work.path().join("relbot.yaml")).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let repo = loaded.config.repo.clone().unwrap();
        let workspace = Workspace::new(
            cache.path().join("bump"),
            &repo,
            "main",
            GitCredentials::none(),
        )
        .unwrap();
        Self {
            registry,
            client,
            bare,
            gh,
            github,
            workspace,
            loaded,
            _work: work,
            _cache: cache,
        }
    }

    async fn run(&self, only: &[&str], health: &dyn HealthSource) -> BumpReport {
        let publisher = Publisher {
            github: self.github.clone(),
            workspace: self.workspace.clone(),
            health,
        };
        run_bumps(
            &self.loaded,
            self.loaded.base_dir(),
            &self.client,
            Some(&publisher),
            &BumpOptions {
                only: only.iter().map(|s| s.to_string()).collect(),
                dry_run: false,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    fn branch(&self, policy: &str) -> Option<String> {
        self.bare.ref_sha(&format!("refs/heads/relbot/{policy}"))
    }

    fn writes(&self) -> Vec<String> {
        self.gh
            .requests()
            .into_iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn pr_of(outcome: &PolicyOutcome) -> u64 {
    match outcome {
        PolicyOutcome::Proposed { pr, .. }
        | PolicyOutcome::Updated { pr, .. }
        | PolicyOutcome::Unchanged { pr, .. } => *pr,
        other => panic!("no PR in {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_flow_opens_updates_and_then_leaves_one_pr_alone() {
    let w = World::start().await;
    let main_before = w.bare.ref_sha("refs/heads/main").unwrap();

    // 1. First bump: one PR, auto-merge on, a branch of one commit on main.
    let report = w.run(&["django-api"], &NoHealth).await;
    let line = &report.policies[0];
    assert!(
        matches!(line.outcome, PolicyOutcome::Proposed { .. }),
        "{line:?}"
    );
    assert_eq!(line.merge, Some(MergeState::AutoMergeEnabled));
    assert!(line.pushed);
    let number = pr_of(&line.outcome);
    let open = w.gh.open_pulls(REPO);
    assert_eq!(open.len(), 1);
    let pr = &open[0];
    assert_eq!(pr.number, number);
    assert_eq!(pr.title, "chore(deps): update django-api to 0.0.18");
    assert_eq!(pr.head_ref, "relbot/django-api");
    assert_eq!(pr.base_ref, "main");
    assert_eq!(pr.auto_merge.as_deref(), Some("squash"));
    assert_eq!(pr.labels, ["dependencies"]);
    let body = pr.body.clone().unwrap();
    assert!(body.contains("`0.0.17` → `0.0.18`"), "{body}");
    assert!(body.contains("- `platform/api/deployment.yaml:28`: `image: ahuora/django-api:0.0.17` → `image: ahuora/django-api:0.0.18`"), "{body}");
    assert!(body.contains("Deployment ahuora/django-api: container django-api: docker.io/ahuora/django-api:0.0.17 → docker.io/ahuora/django-api:0.0.18"), "{body}");
    assert_eq!(
        PrMarker::parse(&body).unwrap(),
        PrMarker::bump("django-api", "0.0.18", &["0.0.17".into()]),
        "the marker names what the bump replaced (what a rollback goes back to)"
    );
    let head = w.branch("django-api").unwrap();
    assert_eq!(pr.head_sha, head);
    assert_eq!(w.bare.git(&["rev-parse", &format!("{head}^")]), main_before);
    assert_eq!(
        w.bare.git(&["log", "-1", "--format=%an <%ae>|%s", &head]),
        "relbot <relbot@users.noreply.github.com>|chore(deps): update django-api to 0.0.18"
    );
    assert_eq!(
        w.bare
            .git(&["diff", "--stat", &main_before, &head, "--format="])
            .lines()
            .count(),
        2,
        "one file changed"
    );
    assert!(
        w.bare
            .git(&["show", &format!("{head}:platform/api/deployment.yaml")])
            .contains("image: ahuora/django-api:0.0.18\n")
    );
    assert_eq!(
        w.bare.ref_sha("refs/heads/main").unwrap(),
        main_before,
        "nothing merged yet"
    );

    // 2. A newer tag: the same PR, force-pushed, edited in place.
    w.registry
        .seed("ahuora/django-api", &["0.0.19"], Media::Docker)
        .await;
    let report = w.run(&["django-api"], &NoHealth).await;
    let line = &report.policies[0];
    assert!(
        matches!(line.outcome, PolicyOutcome::Updated { pr, .. } if pr == number),
        "{line:?}"
    );
    assert_eq!(line.merge, Some(MergeState::AlreadyEnabled));
    let new_head = w.branch("django-api").unwrap();
    assert_ne!(new_head, head);
    assert_eq!(
        w.bare.git(&["rev-parse", &format!("{new_head}^")]),
        main_before,
        "still one commit on main"
    );
    let open = w.gh.open_pulls(REPO);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].number, number);
    assert_eq!(open[0].title, "chore(deps): update django-api to 0.0.19");
    assert_eq!(open[0].head_sha, new_head);
    assert!(
        open[0]
            .body
            .as_deref()
            .unwrap()
            .contains("`0.0.17` → `0.0.19`")
    );

    // 3. Nothing new: no writes anywhere.
    w.gh.clear_requests();
    let report = w.run(&["django-api"], &NoHealth).await;
    let line = &report.policies[0];
    assert!(
        matches!(line.outcome, PolicyOutcome::Unchanged { pr, .. } if pr == number),
        "{line:?}"
    );
    assert!(!line.pushed);
    assert_eq!(report.requests.git_pushes, 0);
    assert_eq!(w.writes(), Vec::<String>::new());
    assert_eq!(w.branch("django-api").unwrap(), new_head);
    // One request: the open PRs, listed once per run.
    assert_eq!(
        report.requests.github_requests,
        1,
        "{:?}",
        w.gh.request_lines()
    );

    // 4. A person closes the PR: it stays closed, nothing new is opened.
    w.gh.close_pull_as_human(REPO, number);
    w.gh.clear_requests();
    let report = w.run(&["django-api"], &NoHealth).await;
    assert_eq!(
        report.policies[0].outcome,
        PolicyOutcome::SkippedHumanClosed { pr: number }
    );
    assert_eq!(w.writes(), Vec::<String>::new());
    assert!(w.gh.open_pulls(REPO).is_empty());
    assert_eq!(w.gh.pull(REPO, number).state, "closed");
    assert_eq!(w.branch("django-api").unwrap(), new_head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_flow_never_merges_into_a_degraded_application() {
    let w = World::start().await;
    let degraded = StaticHealth::default().with("platform", AppHealth::Degraded);
    let report = w.run(&["idaes", "pgbouncer"], &degraded).await;
    for line in &report.policies {
        assert!(
            matches!(line.outcome, PolicyOutcome::Proposed { .. }),
            "{line:?}"
        );
        assert_eq!(
            line.merge,
            Some(MergeState::HeldDegraded {
                application: "platform".into()
            })
        );
    }
    assert_eq!(w.gh.open_pulls(REPO).len(), 2);
    assert!(w.gh.open_pulls(REPO).iter().all(|p| p.auto_merge.is_none()));
    assert!(
        !w.gh
            .request_lines()
            .iter()
            .any(|l| l.contains("graphql") || l.contains("/merge"))
    );

    // Healthy again: the next run asks for the merge, once per policy.
    let healthy = StaticHealth::default().with("platform", AppHealth::Healthy);
    w.gh.clear_requests();
    let report = w.run(&["idaes", "pgbouncer"], &healthy).await;
    for line in &report.policies {
        assert!(
            matches!(line.outcome, PolicyOutcome::Unchanged { .. }),
            "{line:?}"
        );
        assert_eq!(line.merge, Some(MergeState::AutoMergeEnabled));
    }
    let graphql =
        w.gh.request_lines()
            .iter()
            .filter(|l| l.contains("graphql"))
            .count();
    assert_eq!(graphql, 2);
    assert!(
        w.gh.open_pulls(REPO)
            .iter()
            .all(|p| p.auto_merge.as_deref() == Some("squash"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_flow_policy_without_automerge_and_a_merged_bump() {
    let w = World::start().await;
    // postgres has `automerge: false`: a PR, no merge request.
    let report = w.run(&["postgres"], &NoHealth).await;
    let line = &report.policies[0];
    assert!(
        matches!(line.outcome, PolicyOutcome::Proposed { .. }),
        "{line:?}"
    );
    assert_eq!(line.merge, Some(MergeState::Disabled));
    let number = pr_of(&line.outcome);

    // CI passes and a person merges: the next run finds main up to date.
    let head = w.branch("postgres").unwrap();
    w.gh.set_status(REPO, &head, "ci/test", "success");
    w.github
        .merge_pull(number, &head, relbot::config::MergeMethod::Squash)
        .await
        .unwrap();
    assert!(
        w.bare
            .git(&["show", "main:platform/postgres/statefulset.yaml"])
            .contains("postgres:16.6")
    );
    w.gh.clear_requests();
    let report = w.run(&["postgres"], &NoHealth).await;
    assert_eq!(report.policies[0].outcome, PolicyOutcome::UpToDate);
    assert!(
        w.gh.requests().is_empty(),
        "nothing to publish: GitHub is not asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_flow_supersedes_an_older_pr_for_the_same_policy() {
    let w = World::start().await;
    // A PR from an older relbot layout: another branch, the policy's marker.
    let main = w.bare.ref_sha("refs/heads/main").unwrap();
    w.bare.git(&["branch", "renovate/idaes-0.0.11", &main]);
    let stale = w.gh.seed_pull(
        REPO,
        "relbot[bot]",
        "renovate/idaes-0.0.11",
        "main",
        "chore(deps): update idaes to 0.0.11",
        &PrMarker::new("idaes", "0.0.11").render(),
    );
    let report = w.run(&["idaes"], &NoHealth).await;
    let line = &report.policies[0];
    assert!(
        matches!(line.outcome, PolicyOutcome::Proposed { .. }),
        "{line:?}"
    );
    let keeper = pr_of(&line.outcome);
    let open = w.gh.open_pulls(REPO);
    assert_eq!(open.len(), 1, "never two open PRs for one policy");
    assert_eq!(open[0].number, keeper);
    let closed = w.gh.pull(REPO, stale);
    assert_eq!(closed.state, "closed");
    assert!(!closed.merged);
    assert!(
        closed
            .comments
            .iter()
            .any(|c| c.contains(&format!("#{keeper}")))
    );
    // relbot closed it, so it is not mistaken for a human close later.
    assert!(
        PrMarker::parse(closed.body.as_deref().unwrap())
            .unwrap()
            .superseded
    );
}
