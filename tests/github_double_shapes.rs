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
        "query": "mutation($id: ID!, $method: PullRequestMergeMethod) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) { pullRequest { number } } }",
        "variables": { "id": pr.node_id, "method": "SQUASH" }
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

/// A raw request through octocrab (no redirect following), for status and
/// headers the typed API hides.
async fn raw(
    crab: &Octocrab,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, http::HeaderMap, serde_json::Value) {
    let response = match method {
        "GET" => crab._get(path).await,
        "POST" => crab._post(path, body.as_ref()).await,
        "PATCH" => crab._patch(path, body.as_ref()).await,
        other => panic!("unsupported method {other}"),
    }
    .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = crab.body_to_string(response).await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn link(headers: &http::HeaderMap) -> String {
    headers
        .get("link")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn github_double_statuses_and_check_runs_are_paged_with_link_headers() {
    let (gh, crab) = setup().await;
    for i in 0..5 {
        gh.set_status(REPO, SHA, &format!("ci/{i}"), "success");
        gh.set_check_run(REPO, SHA, &format!("job-{i}"), "completed", Some("success"));
    }
    let (status, headers, body) = raw(
        &crab,
        "GET",
        &format!("/repos/{REPO}/commits/{SHA}/status?per_page=2&page=2"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 5);
    assert_eq!(body["statuses"].as_array().unwrap().len(), 2);
    assert_eq!(body["statuses"][0]["context"], "ci/2");
    let links = link(&headers);
    assert!(
        links.contains("page=3>; rel=\"next\"") && links.contains("page=3>; rel=\"last\""),
        "{links}"
    );
    assert!(links.contains("page=1>; rel=\"prev\""), "{links}");

    let (_, headers, body) = raw(
        &crab,
        "GET",
        &format!("/repos/{REPO}/commits/{SHA}/check-runs?per_page=2&page=3"),
        None,
    )
    .await;
    assert_eq!(body["total_count"], 5);
    assert_eq!(body["check_runs"][0]["name"], "job-4");
    assert_eq!(
        body["check_runs"][0]["app"]["id"],
        github_double::ACTIONS_APP_ID
    );
    assert!(!link(&headers).contains("rel=\"next\""), "the last page");
    // Default page size is 30, as on GitHub: one page, no Link header.
    let (_, headers, body) = raw(
        &crab,
        "GET",
        &format!("/repos/{REPO}/commits/{SHA}/check-runs"),
        None,
    )
    .await;
    assert_eq!(body["check_runs"].as_array().unwrap().len(), 5);
    assert!(headers.get("link").is_none());
    // octocrab's typed model reads the paged answer, `app` included.
    let runs = crab
        .checks("acme", "cluster-config")
        .list_check_runs_for_git_ref(octocrab::params::repos::Commitish(SHA.into()))
        .per_page(2)
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, 5);
    assert_eq!(runs.check_runs.len(), 2);
}

#[tokio::test]
async fn github_double_refuses_what_githubs_description_does_not_allow() {
    let (gh, crab) = setup().await;
    let pulls = format!("/repos/{REPO}/pulls");
    // Create: head and base are required; a title unless an issue is converted.
    let (status, _, body) = raw(
        &crab,
        "POST",
        &pulls,
        Some(serde_json::json!({ "title": "t", "base": "main" })),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("head"))
    );
    let (status, _, body) = raw(
        &crab,
        "POST",
        &pulls,
        Some(serde_json::json!({ "head": "relbot/django-api", "base": "main" })),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (422, Some("missing_field"))
    );
    // Nothing more than head, base and a title is needed; `owner:` is accepted.
    let (status, _, created) = raw(
        &crab,
        "POST",
        &pulls,
        Some(serde_json::json!({ "head": "acme:relbot/django-api", "base": "main", "title": "t" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["body"], serde_json::Value::Null);
    // Another owner's branch is a fork's: none here.
    let (status, _, _) = raw(
        &crab,
        "POST",
        &pulls,
        Some(serde_json::json!({ "head": "someone:relbot/django-api", "base": "main", "title": "t" })),
    )
    .await;
    assert_eq!(status, 422);

    // PATCH state: only `open` or `closed`.
    let (status, _, body) = raw(
        &crab,
        "PATCH",
        &format!("{pulls}/1"),
        Some(serde_json::json!({ "state": "merged" })),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("state"))
    );
    assert_eq!(gh.pull(REPO, 1).state, "open");

    // Labels: at least one.
    for empty in [serde_json::json!({ "labels": [] }), serde_json::json!([])] {
        let (status, _, body) = raw(
            &crab,
            "POST",
            &format!("/repos/{REPO}/issues/1/labels"),
            Some(empty),
        )
        .await;
        assert_eq!(status, 422, "{body}");
    }

    // The head filter: `owner:branch`, nothing else.
    let (status, _, _) = raw(
        &crab,
        "GET",
        &format!("{pulls}?head=relbot/django-api"),
        None,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _, body) = raw(
        &crab,
        "GET",
        &format!("{pulls}?head=someone:relbot/django-api"),
        None,
    )
    .await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(0)));
    let (_, _, body) = raw(
        &crab,
        "GET",
        &format!("{pulls}?head=ACME:relbot/django-api"),
        None,
    )
    .await;
    assert_eq!(
        body.as_array().map(Vec::len),
        Some(1),
        "owner is not case sensitive"
    );
    let (status, _, _) = raw(&crab, "GET", &format!("{pulls}?state=merged"), None).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn github_double_graphql_is_checked_against_the_schema() {
    let (gh, crab) = setup().await;
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let pr = crab
        .pulls("acme", "cluster-config")
        .create("t", "relbot/django-api", "main")
        .send()
        .await
        .unwrap();
    let ask = |query: &str, variables: serde_json::Value| {
        let crab = crab.clone();
        let body = serde_json::json!({ "query": query, "variables": variables });
        async move { raw(&crab, "POST", "/graphql", Some(body)).await.2 }
    };
    let first_error = |answer: &serde_json::Value| {
        answer["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let cases = [
        (
            "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id, headOid: \"abc\"}) { clientMutationId } }",
            "InputObject 'EnablePullRequestAutoMergeInput' doesn't accept argument 'headOid'",
        ),
        (
            "mutation($id: ID!) { enablePullRequestAutoMerge(pullRequestId: $id) { clientMutationId } }",
            "Field 'enablePullRequestAutoMerge' doesn't accept argument 'pullRequestId'",
        ),
        (
            "mutation($id: ID!) { enablePullRequestAutomerge(input: {pullRequestId: $id}) { clientMutationId } }",
            "Field 'enablePullRequestAutomerge' doesn't exist on type 'Mutation'",
        ),
        (
            "mutation Enable { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }",
            "Variable $id is used by Enable but not declared",
        ),
        (
            "mutation($id: ID!, $m: String) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $m}) { clientMutationId } }",
            "Type mismatch on variable $m and argument mergeMethod (String / PullRequestMergeMethod)",
        ),
        (
            "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: FAST}) { clientMutationId } }",
            "Argument 'mergeMethod' has an invalid value (FAST). Expected type 'PullRequestMergeMethod'.",
        ),
        (
            "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { pullRequest { numbr } } }",
            "Field 'numbr' doesn't exist on type 'PullRequest'",
        ),
        (
            "mutation { enablePullRequestAutoMerge(input: {mergeMethod: SQUASH}) { clientMutationId } }",
            "Argument 'pullRequestId' on InputObject 'EnablePullRequestAutoMergeInput' is required. Expected type ID!",
        ),
    ];
    for (query, expected) in cases {
        let answer = ask(query, serde_json::json!({ "id": pr.node_id })).await;
        assert!(answer.get("data").is_none(), "{answer}");
        assert_eq!(first_error(&answer), expected, "{query}");
    }
    let answer = ask(
        "mutation($id: ID!, $unused: String) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }",
        serde_json::json!({ "id": pr.node_id }),
    )
    .await;
    assert_eq!(
        first_error(&answer),
        "Variable $unused is declared by anonymous mutation but not used"
    );
    let answer = ask(
        "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { clientMutationId } }",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        first_error(&answer),
        "Variable $id of type ID! was provided invalid value"
    );
    assert!(gh.pull(REPO, 1).auto_merge.is_none(), "nothing ran");

    // `expectedHeadOid` is honoured: a head that moved is refused...
    let pin = "mutation($id: ID!, $oid: GitObjectID) { enablePullRequestAutoMerge(input: {pullRequestId: $id, expectedHeadOid: $oid}) { pullRequest { number headRefOid autoMergeRequest { mergeMethod } } } }";
    let stale = "4".repeat(40);
    let answer = ask(pin, serde_json::json!({ "id": pr.node_id, "oid": stale })).await;
    assert!(
        first_error(&answer).contains("expected head oid"),
        "{answer}"
    );
    assert!(gh.pull(REPO, 1).auto_merge.is_none());
    // ...the current one is accepted, and the answer is what was selected.
    let answer = ask(pin, serde_json::json!({ "id": pr.node_id, "oid": SHA })).await;
    assert_eq!(
        answer["data"],
        serde_json::json!({ "enablePullRequestAutoMerge": { "pullRequest": {
            "number": 1, "headRefOid": SHA, "autoMergeRequest": { "mergeMethod": "MERGE" }
        } } })
    );
    assert_eq!(gh.pull(REPO, 1).auto_merge.as_deref(), Some("merge"));
}

#[tokio::test]
async fn github_double_enterprise_layout_answers_only_its_own_paths() {
    relbot::tls::init();
    let gh = GitHubDouble::start_enterprise().await;
    gh.add_repo(REPO, "main");
    let crab = Octocrab::builder()
        .base_uri(gh.url())
        .unwrap()
        .personal_token(GitHubDouble::TOKEN.to_string())
        .build()
        .unwrap();
    assert_eq!(gh.api_url(), format!("{}/api/v3", gh.url()));
    assert_eq!(
        raw(&crab, "GET", &format!("/api/v3/repos/{REPO}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        raw(&crab, "GET", &format!("/repos/{REPO}"), None).await.0,
        404
    );
    let (status, _, _) = raw(
        &crab,
        "POST",
        "/api/app/installations/1/access_tokens",
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, 404, "GHES has no /api/app");
    let (status, _, _) = raw(
        &crab,
        "POST",
        "/graphql",
        Some(serde_json::json!({ "query": "mutation { x }" })),
    )
    .await;
    assert_eq!(status, 404, "GHES serves GraphQL at /api/graphql");
}

#[tokio::test]
async fn github_double_renamed_repository_redirects_like_github() {
    let (gh, crab) = setup().await;
    gh.rename_repo(REPO, "platform/cluster-config");
    let (status, headers, body) = raw(
        &crab,
        "GET",
        &format!("/repos/{REPO}/pulls?state=all"),
        None,
    )
    .await;
    assert_eq!(status, 301);
    let location = headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&format!("{}/repositories/", gh.url()))
            && location.ends_with("/pulls?state=all"),
        "{location}"
    );
    assert_eq!(body["message"], "Moved Permanently");
    let (status, _, _) = raw(
        &crab,
        "POST",
        &format!("/repos/{REPO}/pulls"),
        Some(serde_json::json!({ "head": "relbot/django-api", "base": "main", "title": "t" })),
    )
    .await;
    assert_eq!(
        status, 307,
        "writes are redirected with 307: repeat them unchanged"
    );
    let path = location.strip_prefix(&gh.url()).unwrap();
    assert_eq!(raw(&crab, "GET", path, None).await.0, 200);
    let repo = crab
        .repos("platform", "cluster-config")
        .get()
        .await
        .unwrap();
    assert_eq!(repo.full_name.as_deref(), Some("platform/cluster-config"));
}
