//! The git source against real repositories: file:// and local paths,
//! `git daemon` (git://) and `git http-backend` (smart HTTP, with and
//! without a token), all on 127.0.0.1.

#[path = "support/git.rs"]
mod git_support;

use std::path::{Path, PathBuf};

use git_support::{BareRepo, GitDaemon, GitHttpServer, TestRepo, free_port};
use relbot::config::{ConfigDuration, RepoConfig};
use relbot::source::git::{Checkout, GitCredentials, GitError, GitSource};
use tempfile::TempDir;

fn repo_config(url: &str, branch: &str, revision: Option<&str>) -> RepoConfig {
    RepoConfig {
        url: url.to_string(),
        branch: branch.to_string(),
        revision: revision.map(str::to_string),
        interval: ConfigDuration::from_secs(180),
    }
}

fn source(cache: &Path, url: &str, branch: &str, revision: Option<&str>) -> GitSource {
    GitSource::new(
        cache.to_path_buf(),
        &repo_config(url, branch, revision),
        GitCredentials::none(),
    )
    .expect("valid source")
}

/// A work repo with one commit pushed to a fresh bare remote.
fn upstream() -> (TestRepo, BareRepo) {
    let work = TestRepo::new();
    work.write("apps/web/deploy.yaml", "image: web:1\n");
    work.write("apps/api/deploy.yaml", "image: api:1\n");
    work.commit("initial");
    let bare = BareRepo::new("config");
    work.push_to(&bare, "main");
    (work, bare)
}

fn read(checkout: &Checkout, rel: &str) -> String {
    std::fs::read_to_string(checkout.path.join(rel)).unwrap()
}

#[test]
fn clone_then_incremental_fetch_follows_the_branch() {
    let (work, bare) = upstream();
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &bare.url(), "main", None);

    let first = src.sync().unwrap();
    assert_eq!(first.revision, bare.ref_sha("main").unwrap());
    assert_eq!(first.branch, "main");
    assert_eq!(first.changed_from, None);
    assert_eq!(read(&first, "apps/web/deploy.yaml"), "image: web:1\n");

    work.write("apps/web/deploy.yaml", "image: web:2\n");
    work.remove("apps/api");
    let second_sha = work.commit("feat: web 2, drop api");
    work.push_to(&bare, "main");

    let second = src.sync().unwrap();
    assert_eq!(second.revision, second_sha);
    assert_eq!(
        second.changed_from.as_deref(),
        Some(first.revision.as_str())
    );
    assert_eq!(second.path, first.path);
    assert_eq!(read(&second, "apps/web/deploy.yaml"), "image: web:2\n");
    assert!(!second.path.join("apps/api/deploy.yaml").exists());

    // Nothing new upstream: same revision, nothing changed.
    let third = src.sync().unwrap();
    assert_eq!(third.revision, second_sha);
    assert_eq!(third.changed_from, None);
}

#[test]
fn sync_restores_the_exact_tree_over_local_edits() {
    let (_work, bare) = upstream();
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &bare.url(), "main", None);
    let checkout = src.sync().unwrap();
    std::fs::write(checkout.path.join("apps/web/deploy.yaml"), "tampered\n").unwrap();
    std::fs::write(checkout.path.join("apps/stray.yaml"), "stray\n").unwrap();

    let again = src.sync().unwrap();
    assert_eq!(read(&again, "apps/web/deploy.yaml"), "image: web:1\n");
    assert!(!again.path.join("apps/stray.yaml").exists());
}

#[test]
fn a_local_path_and_a_non_bare_repository_work() {
    let work = TestRepo::new();
    let sha = work.commit_file("a.yaml", "a: 1\n", "initial");
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), work.path().to_str().unwrap(), "main", None);
    let checkout = src.sync().unwrap();
    assert_eq!(checkout.revision, sha);
    assert_eq!(read(&checkout, "a.yaml"), "a: 1\n");
}

#[test]
fn two_repositories_share_a_cache_directory_without_colliding() {
    let (_w1, one) = upstream();
    let other_work = TestRepo::new();
    other_work.commit_file("other.yaml", "other\n", "other");
    let other = BareRepo::new("config"); // same name, different place
    other_work.push_to(&other, "main");

    let cache = TempDir::new().unwrap();
    let a = source(cache.path(), &one.url(), "main", None)
        .sync()
        .unwrap();
    let b = source(cache.path(), &other.url(), "main", None)
        .sync()
        .unwrap();
    assert_ne!(a.path, b.path);
    assert!(a.path.join("apps/web/deploy.yaml").exists());
    assert!(b.path.join("other.yaml").exists());
    assert!(!b.path.join("apps").exists());
}

#[test]
fn follows_the_configured_branch() {
    let (work, bare) = upstream();
    work.checkout_new("release");
    let release_sha = work.commit_file("release.txt", "r\n", "release only");
    work.push_to(&bare, "release");

    let cache = TempDir::new().unwrap();
    let main = source(cache.path(), &bare.url(), "main", None)
        .sync()
        .unwrap();
    assert!(!main.path.join("release.txt").exists());

    // The same URL with another branch uses the same cache and switches.
    let release = source(cache.path(), &bare.url(), "release", None)
        .sync()
        .unwrap();
    assert_eq!(release.revision, release_sha);
    assert_eq!(release.branch, "release");
    assert!(release.path.join("release.txt").exists());
    assert_eq!(
        release.changed_from.as_deref(),
        Some(main.revision.as_str())
    );
}

#[test]
fn a_missing_branch_is_a_clear_error() {
    let (_work, bare) = upstream();
    let cache = TempDir::new().unwrap();
    let err = source(cache.path(), &bare.url(), "nope", None)
        .sync()
        .unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("branch \"nope\" not found in {}", bare.url())),
        "{message}"
    );
}

#[test]
fn a_branch_deleted_upstream_is_reported_not_served_stale() {
    let (work, bare) = upstream();
    work.checkout_new("feature");
    work.commit_file("f.txt", "f\n", "feature");
    work.push_to(&bare, "feature");
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &bare.url(), "feature", None);
    src.sync().unwrap();

    bare.git(&["branch", "-D", "feature"]);
    let err = src.sync().unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
}

#[test]
fn pinned_revisions_tag_sha_short_sha_and_branch() {
    let (work, bare) = upstream();
    let v1 = work.head();
    work.tag("v1.0.0");
    work.tag_annotated("v1.0.0-annotated", "annotated release");
    let v2 = work.commit_file("apps/web/deploy.yaml", "image: web:2\n", "v2");
    work.checkout_new("side");
    let side = work.commit_file("side.txt", "side\n", "side work");
    work.checkout("main");
    let v3 = work.commit_file("apps/web/deploy.yaml", "image: web:3\n", "v3");
    work.push_to(&bare, "main");
    work.push_to(&bare, "side");
    work.push_to(&bare, "--tags");

    let cache = TempDir::new().unwrap();
    let short = &v2[..10];
    for (revision, expected) in [
        ("v1.0.0", &v1),
        ("v1.0.0-annotated", &v1),
        (v2.as_str(), &v2),
        (short, &v2),
        ("side", &side),
        // A SHA that lives only on another branch.
        (side.as_str(), &side),
        ("main", &v3),
    ] {
        let checkout = source(cache.path(), &bare.url(), "main", Some(revision))
            .sync()
            .unwrap_or_else(|e| panic!("{revision}: {e}"));
        assert_eq!(&checkout.revision, expected, "revision {revision}");
    }

    // A pinned revision does not need the configured branch to exist.
    let checkout = source(cache.path(), &bare.url(), "gone", Some("v1.0.0"))
        .sync()
        .unwrap();
    assert_eq!(checkout.revision, v1);
    assert_eq!(read(&checkout, "apps/web/deploy.yaml"), "image: web:1\n");
}

#[test]
fn a_missing_revision_is_a_clear_error() {
    let (_work, bare) = upstream();
    let cache = TempDir::new().unwrap();
    for revision in ["v9.9.9", "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"] {
        let err = source(cache.path(), &bare.url(), "main", Some(revision))
            .sync()
            .unwrap_err();
        assert!(matches!(err, GitError::RevisionNotFound { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(revision), "{message}");
        assert!(message.contains(&bare.url()), "{message}");
    }
}

#[test]
fn bad_and_unreachable_urls_are_clear_errors() {
    let cache = TempDir::new().unwrap();
    let err = GitSource::new(
        cache.path().to_path_buf(),
        &repo_config("ftp://example.com/repo.git", "main", None),
        GitCredentials::none(),
    )
    .unwrap_err();
    assert!(matches!(err, GitError::BadUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("ftp://example.com/repo.git"));

    let missing = cache.path().join("no-such-repo");
    let url = format!("file://{}", missing.display());
    let err = source(cache.path(), &url, "main", None).sync().unwrap_err();
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-repo"), "{err}");

    let url = format!("http://127.0.0.1:{}/config.git", free_port());
    let err = source(cache.path(), &url, "main", None).sync().unwrap_err();
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn changed_paths_lists_files_between_two_commits() {
    let (work, bare) = upstream();
    let before = work.head();
    work.write("apps/web/deploy.yaml", "image: web:2\n");
    work.remove("apps/api/deploy.yaml");
    work.write("apps/new/svc.yaml", "kind: Service\n");
    let after = work.commit("change things");
    work.push_to(&bare, "main");

    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &bare.url(), "main", None);
    src.sync().unwrap();
    let paths = src.changed_paths(&before, &after).unwrap();
    let expected: Vec<PathBuf> = [
        "apps/api/deploy.yaml",
        "apps/new/svc.yaml",
        "apps/web/deploy.yaml",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(paths, expected);

    // GitHub's "before" of a new branch: everything in `after` is new.
    let all = src.changed_paths(&"0".repeat(40), &after).unwrap();
    assert_eq!(all.len(), 2);

    let err = src.changed_paths("1234567", &after).unwrap_err();
    assert!(matches!(err, GitError::RevisionNotFound { .. }), "{err:?}");
}

#[test]
fn concurrent_syncs_of_one_cache_serialise() {
    let (_work, bare) = upstream();
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &bare.url(), "main", None);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| src.sync())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let expected = bare.ref_sha("main").unwrap();
    for result in results {
        assert_eq!(result.unwrap().revision, expected);
    }
}

#[test]
fn git_daemon_clone_and_fetch() {
    let (work, bare) = upstream();
    let daemon = GitDaemon::start(bare.root());
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &daemon.url("config"), "main", None);
    let first = src.sync().unwrap();
    assert_eq!(first.revision, bare.ref_sha("main").unwrap());

    let next = work.commit_file("apps/web/deploy.yaml", "image: web:9\n", "fix: web");
    work.push_to(&bare, "main");
    let second = src.sync().unwrap();
    assert_eq!(second.revision, next);
    assert_eq!(read(&second, "apps/web/deploy.yaml"), "image: web:9\n");
}

#[test]
fn smart_http_clone_and_fetch() {
    let (work, bare) = upstream();
    let http = GitHttpServer::start(bare.root());
    let cache = TempDir::new().unwrap();
    let src = source(cache.path(), &http.url("config"), "main", None);
    let first = src.sync().unwrap();
    assert_eq!(first.revision, bare.ref_sha("main").unwrap());

    let next = work.commit_file("apps/web/deploy.yaml", "image: web:3\n", "fix: web");
    work.push_to(&bare, "main");
    let second = src.sync().unwrap();
    assert_eq!(second.revision, next);
    assert_eq!(
        second.changed_from.as_deref(),
        Some(first.revision.as_str())
    );
}

#[test]
fn smart_http_with_a_token() {
    const TOKEN: &str = "ghs_relbotTestToken123";
    let (_work, bare) = upstream();
    let http = GitHttpServer::start_with_token(bare.root(), TOKEN);
    let cache = TempDir::new().unwrap();
    let config = repo_config(&http.url("config"), "main", None);

    let with_token = GitSource::new(
        cache.path().to_path_buf(),
        &config,
        GitCredentials::with_token(TOKEN),
    )
    .unwrap();
    let checkout = with_token.sync().unwrap();
    assert_eq!(checkout.revision, bare.ref_sha("main").unwrap());
    // Basic x-access-token:<token>, as GitHub expects.
    let expected = "Basic eC1hY2Nlc3MtdG9rZW46Z2hzX3JlbGJvdFRlc3RUb2tlbjEyMw==";
    assert!(
        http.authorizations_seen().iter().any(|a| a == expected),
        "{:?}",
        http.authorizations_seen()
    );

    // No token: an actionable auth error.
    let cache2 = TempDir::new().unwrap();
    let err = GitSource::new(cache2.path().to_path_buf(), &config, GitCredentials::none())
        .unwrap()
        .sync()
        .unwrap_err();
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("RELBOT_GIT_TOKEN"), "{err}");

    // A wrong token: rejected, and never echoed.
    let wrong = "ghs_wrongWrongWrong";
    let err = GitSource::new(
        cache2.path().to_path_buf(),
        &config,
        GitCredentials::with_token(wrong),
    )
    .unwrap()
    .sync()
    .unwrap_err();
    assert!(matches!(err, GitError::AuthFailed { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(wrong), "{err}");

    // Credentials inside the URL are redacted from errors too.
    let url = http.url_with_credentials("config", "x-access-token", wrong);
    let err = GitSource::new(
        cache2.path().to_path_buf(),
        &repo_config(&url, "main", None),
        GitCredentials::none(),
    )
    .unwrap()
    .sync()
    .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(shown.contains("x-access-token:***@"), "{shown}");
}

#[test]
fn credentials_from_the_environment() {
    // The only test in this binary that touches these variables.
    // SAFETY: no other thread of this test binary reads or writes them.
    unsafe {
        std::env::remove_var("RELBOT_GIT_TOKEN");
        std::env::set_var("RELBOT_GITHUB_TOKEN", "from-github-var");
    }
    let creds = GitCredentials::from_env();
    assert!(creds.has_token());
    assert_eq!(creds.redact("x from-github-var y"), "x *** y");
    unsafe {
        std::env::set_var("RELBOT_GIT_TOKEN", "from-git-var");
    }
    let creds = GitCredentials::from_env();
    assert_eq!(
        creds.redact("from-git-var from-github-var"),
        "*** from-github-var"
    );
    unsafe {
        std::env::remove_var("RELBOT_GIT_TOKEN");
        std::env::remove_var("RELBOT_GITHUB_TOKEN");
    }
    assert!(!GitCredentials::from_env().has_token());
}
