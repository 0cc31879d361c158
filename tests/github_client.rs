//! The GitHub client against the stateful double: each operation, and the
//! failure answers GitHub gives (5xx, rate limits, 422, 409, 405, 401).

#[path = "support/github_double.rs"]
mod github_double;

use std::time::{Duration, Instant};

use axum::http::Method;
use github_double::{FaultAnswer, GitHubDouble};
use relbot::release::github::*;

const REPO: &str = "acme/cluster-config";
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

async fn setup() -> (GitHubDouble, GitHubClient) {
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    gh.set_branch(REPO, "main", &"0".repeat(40));
    gh.set_branch(REPO, "relbot/django-api", SHA1);
    let client = GitHubClient::new(gh.client_settings(REPO)).unwrap();
    (gh, client)
}

fn spec(version: &str) -> PullSpec {
    PullSpec {
        title: format!("chore(deps): update django-api to {version}"),
        body: format!(
            "django-api 0.0.17 → {version}\n\n{}",
            PrMarker::new("django-api", version).render()
        ),
        head: "relbot/django-api".into(),
        base: "main".into(),
        labels: vec!["dependencies".into(), "relbot".into()],
    }
}

#[tokio::test]
async fn github_repository_info_and_default_branch() {
    let (gh, client) = setup().await;
    let info = client.repository_info().await.unwrap();
    assert_eq!(
        info,
        RepositoryInfo {
            default_branch: "main".into(),
            allow_auto_merge: Some(true)
        }
    );
    assert_eq!(client.default_branch().await.unwrap(), "main");
    let requests = gh.requests();
    assert!(
        requests.iter().all(|r| r.authenticated),
        "every request carries credentials"
    );
    assert_eq!(
        gh.request_lines(),
        vec!["GET /repos/acme/cluster-config"; 2]
    );
}

#[tokio::test]
async fn github_create_get_find_update_label_close() {
    let (gh, client) = setup().await;
    let created = client.create_pull(&spec("0.0.18")).await.unwrap();
    assert!(!created.reused_existing);
    let pr = created.pull;
    assert_eq!(pr.number, 1);
    assert_eq!(pr.state, PrState::Open);
    assert_eq!(pr.head_ref, "relbot/django-api");
    assert_eq!(pr.head_sha, SHA1);
    assert_eq!(pr.base_ref, "main");
    assert_eq!(pr.labels, vec!["dependencies", "relbot"]);
    assert_eq!(pr.user_login, "relbot[bot]");
    assert!(pr.node_id.starts_with("PR_"));
    assert!(pr.html_url.ends_with("/acme/cluster-config/pull/1"));
    assert_eq!(
        PrMarker::parse(&pr.body),
        Some(PrMarker::new("django-api", "0.0.18"))
    );

    let got = client.get_pull(1).await.unwrap();
    assert_eq!(got.mergeable_state.as_deref(), Some("clean"));
    assert_eq!(got.title, pr.title);

    let found = client
        .find_pulls_for_branch("relbot/django-api", PrStateFilter::Open)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.number).collect::<Vec<_>>(), vec![1]);
    assert!(
        client
            .find_pulls_for_branch("relbot/other", PrStateFilter::All)
            .await
            .unwrap()
            .is_empty()
    );
    let list = gh
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path.ends_with("/pulls"))
        .unwrap();
    assert!(list.query.unwrap().contains("head=acme:relbot/django-api"));

    let updated = client
        .update_pull(1, "new title", "new body")
        .await
        .unwrap();
    assert_eq!(
        (updated.title.as_str(), updated.body.as_str()),
        ("new title", "new body")
    );
    let labels = client
        .add_labels(1, &["relbot".into(), "extra".into()])
        .await
        .unwrap();
    assert_eq!(labels, vec!["dependencies", "relbot", "extra"]);

    let closed = client
        .close_pull_with_comment(1, "closing: no longer needed")
        .await
        .unwrap();
    assert_eq!(closed.state, PrState::Closed);
    assert!(!closed.merged);
    assert_eq!(gh.pull(REPO, 1).comments, vec!["closing: no longer needed"]);
    assert!(
        client
            .find_pulls_for_branch("relbot/django-api", PrStateFilter::Open)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        client
            .find_pulls_for_branch("relbot/django-api", PrStateFilter::Closed)
            .await
            .unwrap()
            .len(),
        1
    );

    let stats = client.stats().snapshot();
    assert_eq!(
        (stats.prs_opened, stats.prs_updated, stats.prs_closed),
        (1, 1, 1)
    );
    assert_eq!(stats.requests as usize, gh.requests().len());
}

#[tokio::test]
async fn github_listing_follows_pagination_newest_first() {
    let (gh, client) = setup().await;
    for i in 0..130 {
        let n = gh.seed_pull(
            REPO,
            "someone",
            "relbot/django-api",
            "main",
            &format!("t{i}"),
            "b",
        );
        gh.close_pull_as_human(REPO, n);
    }
    let all = client
        .find_pulls_for_branch("relbot/django-api", PrStateFilter::All)
        .await
        .unwrap();
    assert_eq!(all.len(), 130);
    assert_eq!(all.first().unwrap().number, 130);
    assert_eq!(all.last().unwrap().number, 1);
    assert_eq!(gh.request_lines().len(), 2, "two pages of 100");
}

#[tokio::test]
async fn github_open_pull_listing_reads_past_ten_pages() {
    let (gh, client) = setup().await;
    for i in 0..1050 {
        gh.seed_pull(
            REPO,
            "someone",
            "relbot/django-api",
            "main",
            &format!("t{i}"),
            "b",
        );
    }
    let open = client.list_open_pulls().await.unwrap();
    assert_eq!(open.len(), 1050);
    assert_eq!(open.last().unwrap().number, 1);
    assert_eq!(gh.request_lines().len(), 11);
    assert_eq!(client.stats().snapshot().listings_truncated, 0);
}

#[tokio::test]
async fn github_listing_cut_short_says_so_with_the_counts() {
    let (gh, client) = setup().await;
    for i in 0..250 {
        gh.seed_pull(
            REPO,
            "someone",
            "relbot/django-api",
            "main",
            &format!("t{i}"),
            "b",
        );
    }
    let client = client.with_list_page_limit(2);
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    let open = client.list_open_pulls().await.unwrap();
    assert_eq!(open.len(), 200);
    assert_eq!(open.first().unwrap().number, 250, "newest first");
    assert_eq!(client.stats().snapshot().listings_truncated, 1);
    let text = logs.text();
    assert!(
        text.contains("WARN")
            && text.contains(
                "listing open pull requests stopped after 2 pages: 200 read (newest first), 1 more page(s) not read"
            ),
        "{text}"
    );
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn github_supersede_marks_the_marker_and_comments() {
    let (gh, client) = setup().await;
    gh.set_branch(REPO, "release", SHA2);
    let body = format!("old\n{}", PrMarker::new("django-api", "0.0.16").render());
    let old = gh.seed_pull(
        REPO,
        "relbot[bot]",
        "relbot/django-api",
        "release",
        "old",
        &body,
    );
    let pr = client.get_pull(old).await.unwrap();
    let closed = client.supersede_pull(&pr, 9).await.unwrap();
    assert_eq!(closed.state, PrState::Closed);
    let marker = PrMarker::parse(&closed.body).unwrap();
    assert!(marker.superseded);
    assert_eq!(marker.version, "0.0.16");
    assert_eq!(
        gh.pull(REPO, old).comments,
        vec!["Superseded by #9 (django-api 0.0.16); closing. — relbot"]
    );
}

#[tokio::test]
async fn github_server_errors_are_retried_then_succeed() {
    let (gh, client) = setup().await;
    gh.inject(
        Some(Method::GET),
        Some("/pulls"),
        2,
        FaultAnswer::Status(502, "Server Error"),
    );
    let found = client
        .find_pulls_for_branch("relbot/django-api", PrStateFilter::All)
        .await
        .unwrap();
    assert!(found.is_empty());
    let statuses: Vec<u16> = gh.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![502, 502, 200]);
    assert_eq!(client.stats().snapshot().retries, 2);
}

#[tokio::test]
async fn github_server_errors_give_up_after_bounded_attempts() {
    let (gh, client) = setup().await;
    gh.inject(
        None,
        None,
        10,
        FaultAnswer::Status(503, "Service Unavailable"),
    );
    let err = client.get_pull(1).await.unwrap_err();
    assert!(
        matches!(
            err,
            GitHubError::RetriesExhausted {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("GET /repos/acme/cluster-config/pulls/1"),
        "{err}"
    );
    assert_eq!(gh.requests().len(), 3);
}

#[tokio::test]
async fn github_secondary_rate_limit_waits_once_then_succeeds() {
    let (gh, client) = setup().await;
    gh.inject(
        Some(Method::POST),
        Some("/pulls"),
        1,
        FaultAnswer::SecondaryRateLimit {
            retry_after_secs: 1,
        },
    );
    let start = Instant::now();
    let created = client.create_pull(&spec("0.0.18")).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "honoured retry-after"
    );
    assert!(!created.reused_existing);
    assert_eq!(client.stats().snapshot().rate_limit_waits, 1);
    assert_eq!(gh.open_pulls(REPO).len(), 1);
    let posts: Vec<u16> = gh
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, vec![403, 201]);
}

#[tokio::test]
async fn github_rate_limit_longer_than_cap_fails_fast() {
    let (gh, client) = setup().await;
    gh.inject(
        None,
        None,
        1,
        FaultAnswer::PrimaryRateLimit {
            reset_in_secs: 3600,
        },
    );
    let start = Instant::now();
    let err = client.get_pull(1).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, GitHubError::RateLimited { .. }), "{err:?}");
    assert!(err.to_string().contains("rate limited"), "{err}");
}

#[tokio::test]
async fn github_lost_create_response_reuses_the_existing_pr() {
    let (gh, client) = setup().await;
    // GitHub creates the PR but the answer is lost; the retried POST gets 422.
    gh.inject(
        Some(Method::POST),
        Some("/pulls"),
        1,
        FaultAnswer::AppliedThen502,
    );
    let created = client.create_pull(&spec("0.0.18")).await.unwrap();
    assert!(created.reused_existing);
    assert_eq!(created.pull.number, 1);
    assert_eq!(created.pull.labels, vec!["dependencies", "relbot"]);
    assert_eq!(gh.open_pulls(REPO).len(), 1, "never two open PRs");
    let posts: Vec<u16> = gh
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pulls"))
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, vec![502, 422]);
    let stats = client.stats().snapshot();
    assert_eq!((stats.prs_opened, stats.prs_updated), (0, 1));
}

#[tokio::test]
async fn github_create_with_existing_open_pr_updates_it() {
    let (gh, client) = setup().await;
    let first = client.create_pull(&spec("0.0.18")).await.unwrap();
    let second = client.create_pull(&spec("0.0.19")).await.unwrap();
    assert!(second.reused_existing);
    assert_eq!(second.pull.number, first.pull.number);
    assert_eq!(
        gh.pull(REPO, 1).title,
        "chore(deps): update django-api to 0.0.19"
    );
}

#[tokio::test]
async fn github_other_422_is_reported_with_githubs_reason() {
    let (_gh, client) = setup().await;
    let mut bad = spec("0.0.18");
    bad.head = "relbot/missing".into();
    let err = client.create_pull(&bad).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert!(
        err.to_string()
            .contains("Validation Failed; PullRequest head invalid"),
        "{err}"
    );
}

#[tokio::test]
async fn github_merge_with_head_changed_is_a_409_error() {
    let (gh, client) = setup().await;
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    gh.set_branch(REPO, "relbot/django-api", SHA2);
    let err = client
        .merge_pull(pr.number, &pr.head_sha, MergeMethod::Squash)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitHubError::HeadChanged { number: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("head changed from 1111111"),
        "{err}"
    );
    assert!(!gh.pull(REPO, 1).merged);
}

#[tokio::test]
async fn github_merge_blocked_by_required_check_is_405() {
    let (gh, client) = setup().await;
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    let err = client
        .merge_pull(pr.number, &pr.head_sha, MergeMethod::Squash)
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::NotMergeable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("Required status check \"ci/test\" is expected"),
        "{err}"
    );
}

#[tokio::test]
async fn github_merge_sends_sha_and_method() {
    let (gh, client) = setup().await;
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    let sha = client
        .merge_pull(pr.number, &pr.head_sha, MergeMethod::Rebase)
        .await
        .unwrap();
    assert_eq!(sha.len(), 40);
    let put = gh
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.path, "/repos/acme/cluster-config/pulls/1/merge");
    let body = put.body.unwrap();
    assert_eq!(body["sha"], SHA1);
    assert_eq!(body["merge_method"], "rebase");
    let merged = client.get_pull(1).await.unwrap();
    assert!(merged.merged);
    assert_eq!(merged.state, PrState::Closed);
    assert_eq!(client.stats().snapshot().prs_merged, 1);
}

#[tokio::test]
async fn github_checks_combine_statuses_runs_and_required_names() {
    let (gh, client) = setup().await;
    gh.set_required_checks(REPO, "main", &["ci/test", "lint"]);
    let required = client.required_checks("main").await.unwrap();
    assert_eq!(
        required.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["ci/test", "lint"]
    );
    assert!(
        client
            .required_checks("unprotected")
            .await
            .unwrap()
            .is_empty()
    );

    let summary = client
        .combined_status_and_checks(SHA1, &required)
        .await
        .unwrap();
    assert_eq!(summary.state, ChecksState::Pending);
    assert_eq!(summary.pending, vec!["ci/test", "lint"]);

    gh.set_status(REPO, SHA1, "ci/test", "success");
    gh.set_check_run(REPO, SHA1, "lint", "in_progress", None);
    assert_eq!(
        client
            .combined_status_and_checks(SHA1, &required)
            .await
            .unwrap()
            .pending,
        vec!["lint"]
    );

    gh.set_check_run(REPO, SHA1, "lint", "completed", Some("success"));
    assert_eq!(
        client
            .combined_status_and_checks(SHA1, &required)
            .await
            .unwrap()
            .state,
        ChecksState::Success
    );

    gh.set_check_run(REPO, SHA1, "e2e", "completed", Some("failure"));
    let summary = client
        .combined_status_and_checks(SHA1, &required)
        .await
        .unwrap();
    assert_eq!(
        (summary.state, summary.failing),
        (ChecksState::Failure, vec!["e2e".to_string()])
    );
}

#[tokio::test]
async fn github_checks_are_read_across_all_pages() {
    let (gh, client) = setup().await;
    for i in 0..150 {
        gh.set_check_run(
            REPO,
            SHA1,
            &format!("job-{i:03}"),
            "completed",
            Some("success"),
        );
        gh.set_status(REPO, SHA1, &format!("ci/{i:03}"), "success");
    }
    let summary = client.combined_status_and_checks(SHA1, &[]).await.unwrap();
    assert_eq!(summary.state, ChecksState::Success);
    // The failing ones sort last: on page 2 of each list.
    gh.set_check_run(REPO, SHA1, "zz-e2e", "completed", Some("failure"));
    gh.set_status(REPO, SHA1, "zz/security", "error");
    gh.clear_requests();
    let summary = client.combined_status_and_checks(SHA1, &[]).await.unwrap();
    assert_eq!(summary.state, ChecksState::Failure);
    assert_eq!(summary.failing, vec!["zz/security", "zz-e2e"]);
    let pages: Vec<String> = gh
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.path, r.query.clone().unwrap_or_default()))
        .collect();
    assert_eq!(pages.len(), 4, "two pages of each: {pages:?}");
    assert!(
        pages.iter().all(|p| p.contains("per_page=100")),
        "{pages:?}"
    );
    // A required check that only appears on page 2 is found there.
    let required = vec![RequiredCheck {
        context: "job-149".into(),
        app_id: None,
    }];
    gh.set_check_run(REPO, SHA1, "zz-e2e", "completed", Some("success"));
    gh.set_status(REPO, SHA1, "zz/security", "success");
    let summary = client
        .combined_status_and_checks(SHA1, &required)
        .await
        .unwrap();
    assert_eq!(summary.state, ChecksState::Success, "{summary:?}");
}

#[tokio::test]
async fn github_required_check_pinned_to_an_app_ignores_other_apps() {
    let (gh, client) = setup().await;
    gh.set_allow_auto_merge(REPO, false);
    gh.set_required_checks_from_apps(REPO, "main", &[("ci/test", Some(4242))]);
    let required = client.required_checks("main").await.unwrap();
    assert_eq!(
        required,
        vec![RequiredCheck {
            context: "ci/test".into(),
            app_id: Some(4242)
        }]
    );
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    // A same-named check from GitHub Actions and a same-named status: neither
    // is the required check.
    gh.set_check_run(REPO, SHA1, "ci/test", "completed", Some("success"));
    gh.set_status(REPO, SHA1, "ci/test", "success");
    assert_eq!(
        client
            .request_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        MergeOutcome::WaitingForChecks {
            pending: vec!["ci/test (from GitHub App 4242)".into()]
        }
    );
    assert!(gh.merges(REPO).is_empty());
    gh.set_check_run_from_app(REPO, SHA1, "ci/test", 4242, "completed", Some("success"));
    assert!(matches!(
        client
            .request_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        MergeOutcome::Merged { .. }
    ));
}

#[tokio::test]
async fn github_auto_merge_outcomes() {
    let (gh, client) = setup().await;
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    // Nothing blocks the PR: GitHub refuses to wait.
    assert_eq!(
        client
            .enable_auto_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        AutoMergeOutcome::AlreadyClean
    );
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    assert_eq!(
        client
            .enable_auto_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        AutoMergeOutcome::Enabled
    );
    assert_eq!(gh.pull(REPO, 1).auto_merge.as_deref(), Some("squash"));
    assert!(client.get_pull(1).await.unwrap().auto_merge_enabled);
    gh.set_allow_auto_merge(REPO, false);
    assert_eq!(
        client
            .enable_auto_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        AutoMergeOutcome::Unavailable
    );
    let unknown = PullRequestInfo {
        node_id: "PR_nope".into(),
        ..pr.clone()
    };
    let err = client
        .enable_auto_merge(&unknown, MergeMethod::Squash)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Could not resolve to a node"),
        "{err}"
    );
    let gql = gh
        .requests()
        .into_iter()
        .find(|r| r.path == "/graphql")
        .unwrap();
    assert_eq!(gql.body.unwrap()["variables"]["mergeMethod"], "SQUASH");
}

#[tokio::test]
async fn github_auto_merge_is_pinned_to_the_commit_relbot_pushed() {
    let (gh, client) = setup().await;
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    assert_eq!(pr.head_sha, SHA1);
    // Someone pushes to the bump branch after relbot did.
    gh.set_branch(REPO, "relbot/django-api", SHA2);
    assert_eq!(
        client
            .enable_auto_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap(),
        AutoMergeOutcome::HeadMoved
    );
    assert!(gh.pull(REPO, 1).auto_merge.is_none(), "nothing was enabled");
    let gql = gh
        .requests()
        .into_iter()
        .find(|r| r.path == "/graphql")
        .unwrap();
    assert_eq!(gql.body.unwrap()["variables"]["expectedHeadOid"], SHA1);
    // Through request_merge: an error that says the head changed, no merge.
    let err = client
        .request_merge(&pr, MergeMethod::Squash)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitHubError::HeadChanged { number: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(SHA1), "{err}");
    assert!(gh.merges(REPO).is_empty());
    // Re-read (the next run): the new head is what gets pinned.
    let fresh = client.get_pull(1).await.unwrap();
    assert_eq!(
        client
            .enable_auto_merge(&fresh, MergeMethod::Squash)
            .await
            .unwrap(),
        AutoMergeOutcome::Enabled
    );
}

#[tokio::test]
async fn github_bad_token_error_names_the_fix_and_hides_the_token() {
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    let mut settings = gh.client_settings(REPO);
    let secret = "ghp_wrong_secret_value_123";
    settings.auth = GitHubAuth::Token(octocrab::secrecy::SecretString::from(secret.to_string()));
    let client = GitHubClient::new(settings).unwrap();
    let err = client.default_branch().await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.status(), Some(401));
    assert!(
        text.contains("Bad credentials") && text.contains("RELBOT_GITHUB_TOKEN"),
        "{text}"
    );
    assert!(
        !text.contains(secret)
            && !format!("{err:?}").contains(secret)
            && !format!("{client:?}").contains(secret)
    );
}

#[tokio::test]
async fn github_app_auth_mints_an_installation_token() {
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    let key = include_str!("support/fixtures/github-app-test-key.pem");
    let public = include_bytes!("support/fixtures/github-app-test-key.pub.pem");
    gh.set_app(4242, public, 77);
    let mut settings = gh.client_settings(REPO);
    settings.auth = GitHubAuth::App {
        app_id: 4242,
        private_key_pem: octocrab::secrecy::SecretString::from(key.to_string()),
        installation_id: 77,
    };
    let client = GitHubClient::new(settings).unwrap();
    let first = client.default_branch().await;
    assert_eq!(
        first.unwrap_or_else(|e| panic!("{e}: {:?}", gh.requests())),
        "main"
    );
    assert_eq!(client.default_branch().await.unwrap(), "main");
    assert_eq!(
        gh.request_lines(),
        vec![
            "POST /app/installations/77/access_tokens",
            "GET /repos/acme/cluster-config",
            "GET /repos/acme/cluster-config",
        ],
        "the installation token is minted once and reused"
    );
}

#[tokio::test]
async fn github_app_auth_refusal_is_reported_once_without_retries() {
    let gh = GitHubDouble::start().await;
    gh.add_repo(REPO, "main");
    let key = include_str!("support/fixtures/github-app-test-key.pem");
    gh.set_app(
        4242,
        include_bytes!("support/fixtures/github-app-test-key.pub.pem"),
        77,
    );
    let mut settings = gh.client_settings(REPO);
    // The wrong App id: GitHub refuses the JWT.
    settings.auth = GitHubAuth::App {
        app_id: 1,
        private_key_pem: octocrab::secrecy::SecretString::from(key.to_string()),
        installation_id: 77,
    };
    let client = GitHubClient::new(settings).unwrap();
    let err = client.default_branch().await.unwrap_err();
    assert!(matches!(err, GitHubError::AppAuth { .. }), "{err:?}");
    assert!(err.to_string().contains("RELBOT_GITHUB_APP_ID"), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"));
    assert_eq!(
        gh.request_lines(),
        vec!["POST /app/installations/77/access_tokens"]
    );
}

#[tokio::test]
async fn github_enterprise_base_url_keeps_its_path_and_graphql_moves_to_api_graphql() {
    let gh = GitHubDouble::start_enterprise().await;
    gh.add_repo(REPO, "main");
    gh.set_branch(REPO, "main", &"0".repeat(40));
    gh.set_branch(REPO, "relbot/django-api", SHA1);
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    let mut settings = gh.client_settings(REPO);
    // A trailing slash, as people paste it.
    settings.api_url = format!("{}/api/v3/", gh.url());
    let client = GitHubClient::new(settings).unwrap();
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    assert_eq!(
        client
            .enable_auto_merge(&pr, MergeMethod::Merge)
            .await
            .unwrap(),
        AutoMergeOutcome::Enabled
    );
    assert_eq!(
        gh.request_lines(),
        vec![
            "POST /api/v3/repos/acme/cluster-config/pulls",
            "POST /api/v3/repos/acme/cluster-config/issues/1/labels",
            "POST /api/graphql",
        ]
    );
}

#[tokio::test]
async fn github_enterprise_with_an_app_mints_under_api_v3_for_rest_and_graphql() {
    let gh = GitHubDouble::start_enterprise().await;
    gh.add_repo(REPO, "main");
    gh.set_branch(REPO, "main", &"0".repeat(40));
    gh.set_branch(REPO, "relbot/django-api", SHA1);
    gh.set_required_checks(REPO, "main", &["ci/test"]);
    gh.set_app(
        4242,
        include_bytes!("support/fixtures/github-app-test-key.pub.pem"),
        77,
    );
    let mut settings = gh.client_settings(REPO);
    assert_eq!(settings.api_url, format!("{}/api/v3", gh.url()));
    settings.auth = GitHubAuth::App {
        app_id: 4242,
        private_key_pem: octocrab::secrecy::SecretString::from(
            include_str!("support/fixtures/github-app-test-key.pem").to_string(),
        ),
        installation_id: 77,
    };
    let client = GitHubClient::new(settings).unwrap();
    let pr = client.create_pull(&spec("0.0.18")).await.unwrap().pull;
    assert_eq!(
        client
            .request_merge(&pr, MergeMethod::Squash)
            .await
            .unwrap_or_else(|e| panic!("{e}: {:?}", gh.request_lines())),
        MergeOutcome::AutoMergeEnabled
    );
    assert_eq!(gh.pull(REPO, 1).auto_merge.as_deref(), Some("squash"));
    assert_eq!(
        gh.request_lines(),
        vec![
            "POST /api/v3/app/installations/77/access_tokens",
            "POST /api/v3/repos/acme/cluster-config/pulls",
            "POST /api/v3/repos/acme/cluster-config/issues/1/labels",
            "POST /api/graphql",
        ],
        "one installation token, minted where GHES serves it, for REST and GraphQL"
    );
    assert!(
        gh.requests()
            .iter()
            .all(|r| r.authenticated && (200..300).contains(&r.status)),
        "{:?}",
        gh.requests()
    );
}

#[tokio::test]
async fn github_renamed_repository_is_followed_for_reads_and_writes() {
    let (gh, client) = setup().await;
    let n = gh.seed_pull(
        REPO,
        "relbot[bot]",
        "relbot/django-api",
        "main",
        "bump",
        &PrMarker::new("django-api", "0.0.18").render(),
    );
    gh.rename_repo(REPO, "acme/platform-config");
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    // A write first: GitHub answers 307, repeated unchanged at the new place.
    client.comment(n, "still here").await.unwrap();
    assert_eq!(
        gh.pull("acme/platform-config", n).comments,
        vec!["still here"]
    );
    assert_eq!(client.repository(), "acme/platform-config");
    let lines = gh.request_lines();
    assert_eq!(
        lines[0],
        "POST /repos/acme/cluster-config/issues/1/comments"
    );
    assert!(
        lines[1].starts_with("POST /repositories/") && lines[1].ends_with("/issues/1/comments"),
        "{lines:?}"
    );
    let statuses: Vec<u16> = gh.requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..2], &[307, 201]);
    assert!(
        logs.text()
            .contains("github.repository acme/cluster-config has moved to acme/platform-config"),
        "{}",
        logs.text()
    );
    // From now on the new name is asked directly.
    gh.clear_requests();
    let found = client
        .find_pulls_for_branch("relbot/django-api", PrStateFilter::Open)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        gh.request_lines()
            .iter()
            .all(|l| l.contains("/repos/acme/platform-config/")),
        "{:?}",
        gh.request_lines()
    );
}

#[tokio::test]
async fn github_transferred_repository_lists_pulls_under_the_new_owner() {
    let (gh, client) = setup().await;
    gh.seed_pull(
        REPO,
        "relbot[bot]",
        "relbot/django-api",
        "main",
        "bump",
        &PrMarker::new("django-api", "0.0.18").render(),
    );
    gh.rename_repo(REPO, "platform/cluster-config");
    // A GET to the old name: 301, followed. The head filter named the old
    // owner (no match after a transfer), so relbot asks again with the new.
    let found = client
        .find_pulls_for_branch("relbot/django-api", PrStateFilter::Open)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|p| p.number).collect::<Vec<_>>(), vec![1]);
    assert_eq!(client.repository(), "platform/cluster-config");
    let requests = gh.requests();
    assert_eq!(requests[0].status, 301);
    let last = requests.last().unwrap();
    assert_eq!(last.path, "/repos/platform/cluster-config/pulls");
    assert!(
        last.query
            .as_deref()
            .unwrap()
            .contains("head=platform:relbot/django-api")
    );
    // Creating the PR again is not tried: the decision sees the open one.
    let plan = decide("django-api", "0.0.18", "main", &found);
    assert!(matches!(
        plan.action,
        PrAction::UpdateInPlace { number: 1, .. }
    ));
}

/// `POST /repos/{o}/{r}/statuses/{sha}` in the shape GitHub documents; the
/// double refuses what GitHub refuses (a state outside the four, a
/// description over 140 characters, a non-URL target).
#[tokio::test]
async fn github_commit_statuses_in_the_documented_shape() {
    use relbot::release::github::statuses::CommitState;
    let (gh, client) = setup().await;
    client
        .create_commit_status(
            SHA1,
            CommitState::Pending,
            "relbot/shop",
            "relbot is syncing shop",
            None,
        )
        .await
        .unwrap();
    let long = "x".repeat(500);
    client
        .create_commit_status(
            SHA1,
            CommitState::Failure,
            "relbot/shop",
            &format!("failed:\n{long}"),
            Some("https://relbot.example/applications/shop"),
        )
        .await
        .expect("a long description is cut to fit, not refused");
    let posted = gh.commit_statuses(REPO);
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[0].1["state"], "pending");
    assert_eq!(posted[1].0, SHA1);
    assert_eq!(posted[1].1["state"], "failure");
    assert_eq!(posted[1].1["context"], "relbot/shop");
    assert_eq!(
        posted[1].1["target_url"],
        "https://relbot.example/applications/shop"
    );
    let description = posted[1].1["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 140);
    assert!(!description.contains('\n'));

    // What GitHub refuses, the double refuses.
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(format!("{}/repos/{REPO}/statuses/{SHA2}", gh.url()))
            .bearer_auth(GitHubDouble::TOKEN)
            .json(&body)
            .send()
    };
    for (body, field) in [
        (serde_json::json!({"state": "ok", "context": "c"}), "state"),
        (serde_json::json!({"context": "c"}), "state"),
        (
            serde_json::json!({"state": "success", "description": "d".repeat(141)}),
            "description",
        ),
        (
            serde_json::json!({"state": "success", "target_url": "ftp://x"}),
            "target_url",
        ),
        (
            serde_json::json!({"state": "success", "context": 7}),
            "context",
        ),
    ] {
        let response = post(body.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), 422, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["errors"][0]["field"], field, "{body}: {answer}");
    }
    assert_eq!(
        gh.commit_statuses(REPO).len(),
        2,
        "nothing refused was kept"
    );
}
