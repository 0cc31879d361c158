//! The double speaks GitHub's shapes: octocrab's own typed API (whose models
//! follow GitHub's OpenAPI description, required fields included) reads every
//! answer relbot relies on.

#[path = "support/github_double.rs"]
mod github_double;

use github_double::GitHubDouble;
use octocrab::Octocrab;
use octocrab::params::State;

const REPO: &str = "acme/cluster-config";
const SHA: &str = "3333333333333333333333333333333333333333";

async fn setup() -> (GitHubDouble, Octocrab) {
    relbot::tls::init();
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    gh.set_branch(REPO, "main", &"0".repeat(40));
    gh.set_branch(REPO, "relbot/django-api", SHA);
    let crab = Octocrab::builder()
        .base_uri(gh.url())
        .unwrap()
        .personal_token(GitHubDouble::TOKEN.to_string())
        .build()
        .unwrap();
    (gh, crab)
}

#[tokio::test]
async fn github_double_pulls_read_by_octocrab_models() {
    let (gh, crab) = setup().await;
    let pulls = crab.pulls("acme", "cluster-config");
    let created = pulls
        .create(
            "chore(deps): update django-api to 0.0.18",
            "relbot/django-api",
            "main",
        )
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(created.number, 1);
    assert_eq!(created.head.sha, SHA);
    assert_eq!(created.head.ref_field, "relbot/django-api");
    assert_eq!(created.user.as_ref().unwrap().login, "relbot[bot]");
    assert_eq!(created.merged, Some(false));
    assert!(matches!(
        created.mergeable_state,
        Some(octocrab::models::pulls::MergeableState::Clean)
    ));

    let got = pulls.get(1).await.unwrap();
    assert_eq!(got.node_id, created.node_id);
    assert!(
        got.html_url
            .unwrap()
            .as_str()
            .ends_with("/acme/cluster-config/pull/1")
    );

    let page = pulls
        .list()
        .state(State::All)
        .head("acme:relbot/django-api")
        .per_page(10)
        .send()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);

    let issues = crab.issues("acme", "cluster-config");
    let comment = issues.create_comment(1, "hello").await.unwrap();
    assert_eq!(comment.body.as_deref(), Some("hello"));
    let labels = issues.add_labels(1, &["relbot".to_string()]).await.unwrap();
    assert_eq!(labels[0].name, "relbot");

    let updated = pulls
        .update(1)
        .title("t2")
        .state(octocrab::params::pulls::State::Closed)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.title.as_deref(), Some("t2"));
    assert!(matches!(
        updated.state,
        Some(octocrab::models::IssueState::Closed)
    ));
    assert!(gh.pull(REPO, 1).state == "closed");
}

#[tokio::test]
async fn github_double_repo_status_checks_and_merge_read_by_octocrab_models() {
    let (gh, crab) = setup().await;
    gh.set_status(REPO, SHA, "ci/test", "success");
    gh.set_check_run(REPO, SHA, "lint", "completed", Some("success"));
    let repo = crab.repos("acme", "cluster-config").get().await.unwrap();
    assert_eq!(repo.default_branch.as_deref(), Some("main"));
    assert_eq!(repo.full_name.as_deref(), Some(REPO));

    let status: octocrab::models::CombinedStatus = crab
        .get(format!("/repos/{REPO}/commits/{SHA}/status"), None::<&()>)
        .await
        .unwrap();
    assert_eq!(status.statuses.len(), 1);
    assert!(matches!(
        status.state,
        octocrab::models::StatusState::Success
    ));

    let runs = crab
        .checks("acme", "cluster-config")
        .list_check_runs_for_git_ref(octocrab::params::repos::Commitish(SHA.into()))
        .send()
        .await
        .unwrap();
    assert_eq!(runs.check_runs[0].name, "lint");

    let pr = crab
        .pulls("acme", "cluster-config")
        .create("t", "relbot/django-api", "main")
        .send()
        .await
        .unwrap();
    let merge = crab
        .pulls("acme", "cluster-config")
        .merge(pr.number)
        .sha(SHA)
        .method(octocrab::params::pulls::MergeMethod::Squash)
        .send()
        .await
        .unwrap();
    assert!(merge.merged);
    assert_eq!(merge.sha.as_deref().map(str::len), Some(40));
    let merged = crab
        .pulls("acme", "cluster-config")
        .get(pr.number)
        .await
        .unwrap();
    assert_eq!(merged.merged, Some(true));
    assert!(merged.merged_at.is_some());
}

#[tokio::test]
async fn github_double_graphql_errors_have_githubs_shape() {
    let (gh, crab) = setup().await;
    let pr = crab
        .pulls("acme", "cluster-config")
        .create("t", "relbot/django-api", "main")
        .send()
        .await
        .unwrap();
    let query = serde_json::json!({
        "query": "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { pullRequest { number } } }",
        "variables": { "pullRequestId": pr.node_id, "mergeMethod": "SQUASH" }
    });
    let err = crab.graphql::<serde_json::Value>(&query).await.unwrap_err();
    assert!(
        format!("{err:?}").contains("Pull request is in clean status"),
        "{err:?}"
    );

    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let data: serde_json::Value = crab.graphql(&query).await.unwrap();
    assert_eq!(
        data["enablePullRequestAutoMerge"]["pullRequest"]["number"],
        1
    );
    let reread = crab.pulls("acme", "cluster-config").get(1).await.unwrap();
    assert!(reread.auto_merge.is_some());
}

#[tokio::test]
async fn github_double_rejects_unknown_credentials() {
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    relbot::tls::init();
    let crab = Octocrab::builder()
        .base_uri(gh.url())
        .unwrap()
        .personal_token("nope".to_string())
        .build()
        .unwrap();
    let err = crab
        .repos("acme", "cluster-config")
        .get()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("Bad credentials"), "{err:?}");
    assert_eq!(gh.requests()[0].status, 401);
}
