//! `relbot tag` against real repositories built by the git command line.

#[path = "support/git.rs"]
mod git_support;

use std::path::PathBuf;

use git_support::{BareRepo, GitHttpServer, TestRepo};
use relbot::release::tagger::{Bump, TagError, TagOptions, create_tag, plan_tag, tag};
use relbot::source::git::{GitCredentials, GitError};
use semver::Version;

fn options() -> TagOptions {
    TagOptions {
        tagger: Some(("relbot-test".into(), "relbot-test@localhost".into())),
        ..TagOptions::default()
    }
}

fn with_prefix(prefix: &str) -> TagOptions {
    TagOptions {
        prefix: prefix.into(),
        ..options()
    }
}

/// A repository whose HEAD is tagged `tag`.
fn repo_tagged(tag: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.commit_file("README.md", "hello\n", "initial");
    repo.tag(tag);
    repo
}

fn next_name(repo: &TestRepo, options: &TagOptions) -> Option<String> {
    plan_tag(repo.path(), options).unwrap().next.map(|n| n.name)
}

#[test]
fn the_first_tag_is_the_initial_version() {
    let repo = TestRepo::new();
    repo.commit_file("a", "a", "feat: first feature");
    repo.commit_file("b", "b", "fix: and a fix");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    assert_eq!(plan.previous, None);
    let next = plan.next.clone().unwrap();
    assert_eq!(next.name, "0.1.0");
    assert_eq!(plan.commits.len(), 2);
    assert!(plan.summary().contains("first tag"), "{}", plan.summary());

    let custom = TagOptions {
        initial_version: Version::new(1, 0, 0),
        prefix: "api-".into(),
        ..options()
    };
    assert_eq!(next_name(&repo, &custom).as_deref(), Some("api-1.0.0"));
}

#[test]
fn each_conventional_rule_from_a_release() {
    for (message, expected) in [
        ("fix: a bug", "1.2.4"),
        ("perf: faster", "1.2.4"),
        ("feat: a feature", "1.3.0"),
        ("feat(api): scoped feature", "1.3.0"),
        ("fix!: breaking fix", "2.0.0"),
        ("feat(api)!: breaking feature", "2.0.0"),
        ("refactor: x\n\nBREAKING CHANGE: the API moved", "2.0.0"),
        ("chore: y\n\nBREAKING-CHANGE: config renamed", "2.0.0"),
        ("Update stuff #minor", "1.3.0"),
        ("Update stuff #patch", "1.2.4"),
        ("Update stuff #major", "2.0.0"),
        ("fix: small but #minor", "1.3.0"),
    ] {
        let repo = repo_tagged("1.2.3");
        repo.commit_file("x", message, message);
        assert_eq!(
            next_name(&repo, &options()).as_deref(),
            Some(expected),
            "{message:?}"
        );
    }
}

#[test]
fn the_highest_bump_of_the_range_wins() {
    let repo = repo_tagged("v2.5.9");
    repo.commit_file("a", "a", "fix: one");
    repo.commit_file("b", "b", "feat: two");
    repo.commit_file("c", "c", "docs: three");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    assert_eq!(plan.bump, Bump::Minor);
    // The `v` style of the previous tag is kept.
    assert_eq!(plan.next.unwrap().name, "v2.6.0");
    let bumps: Vec<Bump> = plan.commits.iter().map(|c| c.bump).collect();
    assert_eq!(bumps, [Bump::None, Bump::Minor, Bump::Patch]);
}

#[test]
fn below_one_a_breaking_change_bumps_minor_unless_configured() {
    let repo = repo_tagged("0.3.1");
    repo.commit_file("a", "a", "feat!: new API");
    assert_eq!(next_name(&repo, &options()).as_deref(), Some("0.4.0"));
    let major = TagOptions {
        breaking_bumps_major_before_1: true,
        ..options()
    };
    assert_eq!(next_name(&repo, &major).as_deref(), Some("1.0.0"));

    // An explicit #major token always means major.
    repo.commit_file("b", "b", "release it #major");
    assert_eq!(next_name(&repo, &options()).as_deref(), Some("1.0.0"));
}

#[test]
fn nothing_releasable_creates_no_tag_and_says_so() {
    let repo = repo_tagged("1.0.0");
    repo.commit_file("a", "a", "chore: deps");
    repo.commit_file("b", "b", "docs: readme");
    repo.commit_file("c", "c", "Tidy up");
    let outcome = tag(repo.path(), &options()).unwrap();
    assert_eq!(outcome.plan.next, None);
    assert_eq!(outcome.created, None);
    let summary = outcome.plan.summary();
    assert!(
        summary.contains("3 commits since 1.0.0, none releasable"),
        "{summary}"
    );
    assert_eq!(repo.tags(), ["1.0.0"]);

    let err = create_tag(repo.path(), &outcome.plan, &options()).unwrap_err();
    assert!(matches!(err, TagError::NothingToTag { .. }), "{err:?}");

    // --default-bump patch makes non-conventional messages releasable.
    let lenient = TagOptions {
        default_bump: Bump::Patch,
        ..options()
    };
    assert_eq!(next_name(&repo, &lenient).as_deref(), Some("1.0.1"));
}

#[test]
fn head_already_tagged_is_a_no_op() {
    let repo = repo_tagged("1.0.0");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    assert_eq!(plan.next, None);
    assert!(plan.commits.is_empty());
    assert!(
        plan.summary().contains("1.0.0 already points at HEAD"),
        "{}",
        plan.summary()
    );
}

#[test]
fn prefixes_separate_components_and_other_tags_are_ignored() {
    let repo = TestRepo::new();
    repo.commit_file("a", "a", "initial");
    repo.tag("django-api-0.1.2");
    repo.tag("django-api-0.1.10"); // semver order, not string order
    repo.tag("web-3.0.0");
    repo.tag("v9.9.9");
    repo.tag("django-api-latest");
    repo.tag("django-api-0.2.0-rc.1"); // pre-releases are not releases
    repo.tag("release-2024");
    repo.commit_file("b", "b", "fix: api bug");

    let plan = plan_tag(repo.path(), &with_prefix("django-api-")).unwrap();
    assert_eq!(plan.previous.as_ref().unwrap().name, "django-api-0.1.10");
    assert_eq!(plan.next.unwrap().name, "django-api-0.1.11");
    assert_eq!(
        next_name(&repo, &with_prefix("web-")).as_deref(),
        Some("web-3.0.1")
    );
    // Empty prefix: only bare versions (with or without v) count.
    assert_eq!(next_name(&repo, &options()).as_deref(), Some("v9.9.10"));
    // A prefix with no tags yet starts at the initial version.
    assert_eq!(
        next_name(&repo, &with_prefix("worker-")).as_deref(),
        Some("worker-0.1.0")
    );
    // `v` after the component prefix is tolerated and kept.
    repo.tag("django-api-v0.3.0");
    repo.commit_file("c", "c", "feat: more");
    assert_eq!(
        next_name(&repo, &with_prefix("django-api-")).as_deref(),
        Some("django-api-v0.4.0")
    );
}

#[test]
fn only_tags_reachable_from_head_count() {
    let repo = repo_tagged("1.0.0");
    repo.checkout_new("other");
    repo.commit_file("o", "o", "feat: elsewhere");
    repo.tag("5.0.0");
    repo.checkout("main");
    repo.commit_file("m", "m", "fix: here");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    assert_eq!(plan.previous.as_ref().unwrap().name, "1.0.0");
    assert_eq!(plan.next.unwrap().name, "1.0.1");
    assert_eq!(plan.commits.len(), 1);
}

#[test]
fn merged_branches_are_walked() {
    let repo = repo_tagged("1.0.0");
    repo.checkout_new("feature");
    repo.commit_file("f", "f", "feat: on a branch");
    repo.checkout("main");
    repo.commit_file("m", "m", "fix: on main");
    repo.merge("feature", "Merge branch 'feature'");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    let subjects: Vec<&str> = plan.commits.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects.contains(&"feat: on a branch"));
    assert_eq!(plan.next.unwrap().name, "1.1.0");
}

#[test]
fn path_limits_the_commits_that_count() {
    let repo = TestRepo::new();
    repo.write("apps/api/main.py", "v1");
    repo.write("apps/web/index.html", "v1");
    repo.commit("initial");
    repo.tag("api-1.0.0");
    repo.commit_file("apps/web/index.html", "v2", "feat: web feature");
    repo.commit_file("apps/api/main.py", "v2", "fix: api fix");
    repo.commit_file("README.md", "docs", "feat!: repo-wide breaking thing");

    let api = TagOptions {
        path: Some(PathBuf::from("apps/api")),
        ..with_prefix("api-")
    };
    let plan = plan_tag(repo.path(), &api).unwrap();
    assert_eq!(plan.commits.len(), 1);
    assert_eq!(plan.skipped_commits, 2);
    assert_eq!(plan.next.clone().unwrap().name, "api-1.0.1");

    // ./apps/api/ and an absolute path mean the same.
    for path in [PathBuf::from("./apps/api/"), repo.path().join("apps/api")] {
        let same = TagOptions {
            path: Some(path),
            ..api.clone()
        };
        assert_eq!(plan_tag(repo.path(), &same).unwrap().next, plan.next);
    }

    // Nothing touching the directory: no tag, and the summary says where.
    let docs = TagOptions {
        path: Some(PathBuf::from("docs")),
        ..with_prefix("api-")
    };
    let plan = plan_tag(repo.path(), &docs).unwrap();
    assert_eq!(plan.next, None);
    assert!(
        plan.summary()
            .contains("no commits touching docs since api-1.0.0"),
        "{}",
        plan.summary()
    );

    let outside = TagOptions {
        path: Some(PathBuf::from("../elsewhere")),
        ..options()
    };
    let err = plan_tag(repo.path(), &outside).unwrap_err();
    assert!(matches!(err, TagError::BadPath { .. }), "{err:?}");
}

#[test]
fn creates_an_annotated_tag_listing_the_commits() {
    let repo = repo_tagged("django-api-0.1.2");
    repo.commit_file("a", "a", "feat(api): add endpoint");
    repo.commit_file("b", "b", "chore: tidy");
    let head = repo.head();
    let opts = with_prefix("django-api-");
    let outcome = tag(repo.path(), &opts).unwrap();
    let created = outcome.created.unwrap();
    assert_eq!(created.name, "django-api-0.2.0");
    assert_eq!(created.version, Version::new(0, 2, 0));
    assert_eq!(created.commit, head);
    assert_eq!(created.pushed_to, None);

    assert_eq!(repo.git(&["cat-file", "-t", "django-api-0.2.0"]), "tag");
    assert_eq!(repo.rev_parse("django-api-0.2.0"), head);
    assert_eq!(
        repo.git(&["rev-parse", "django-api-0.2.0"]),
        created.tag_object
    );
    let body = repo.git(&["cat-file", "-p", "django-api-0.2.0"]);
    assert!(
        body.contains("tagger relbot-test <relbot-test@localhost>"),
        "{body}"
    );
    assert!(body.contains("Changes since django-api-0.1.2:"), "{body}");
    assert!(body.contains("feat(api): add endpoint (minor)"), "{body}");
    assert!(
        !body.contains("chore: tidy"),
        "only releasable commits are listed: {body}"
    );

    // Running again: HEAD is tagged now.
    let again = tag(repo.path(), &opts).unwrap();
    assert_eq!(again.created, None);
}

#[test]
fn dry_run_creates_nothing() {
    let repo = repo_tagged("1.0.0");
    repo.commit_file("a", "a", "feat: x");
    let dry = TagOptions {
        dry_run: true,
        ..options()
    };
    let outcome = tag(repo.path(), &dry).unwrap();
    assert_eq!(outcome.plan.next.unwrap().name, "1.1.0");
    assert_eq!(outcome.created, None);
    assert_eq!(repo.tags(), ["1.0.0"]);
}

#[test]
fn refuses_when_head_moved_or_the_tag_exists_elsewhere() {
    let repo = repo_tagged("1.0.0");
    repo.commit_file("a", "a", "fix: x");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    repo.commit_file("b", "b", "fix: y");
    let err = create_tag(repo.path(), &plan, &options()).unwrap_err();
    assert!(matches!(err, TagError::HeadMoved { .. }), "{err:?}");

    // 1.0.1 already released from another branch.
    repo.checkout_new("hotfix");
    repo.git(&["reset", "-q", "--hard", "1.0.0"]);
    repo.commit_file("h", "h", "fix: hotfix");
    repo.tag("1.0.1");
    repo.checkout("main");
    let plan = plan_tag(repo.path(), &options()).unwrap();
    assert_eq!(plan.next.clone().unwrap().name, "1.0.1");
    let err = create_tag(repo.path(), &plan, &options()).unwrap_err();
    assert!(matches!(err, TagError::TagExists { .. }), "{err:?}");
}

#[test]
fn pushes_the_tag_to_a_bare_remote() {
    let bare = BareRepo::new("component");
    let repo = TestRepo::new();
    repo.commit_file("a", "a", "feat: first");
    repo.add_remote("origin", &bare.url());
    repo.git(&["push", "-q", "origin", "main"]);
    let opts = TagOptions {
        push: Some("origin".into()),
        ..with_prefix("svc-")
    };
    let created = tag(repo.path(), &opts).unwrap().created.unwrap();
    assert_eq!(created.pushed_to.as_deref(), Some("origin"));
    assert_eq!(bare.object_type("refs/tags/svc-0.1.0"), "tag");
    assert_eq!(
        bare.ref_sha("refs/tags/svc-0.1.0^{commit}").unwrap(),
        repo.head()
    );

    let missing = TagOptions {
        push: Some("upstream".into()),
        ..with_prefix("svc-")
    };
    repo.commit_file("b", "b", "fix: two");
    let err = tag(repo.path(), &missing).unwrap_err();
    assert!(matches!(err, TagError::RemoteNotFound { .. }), "{err:?}");
    assert!(!repo.tags().contains(&"svc-0.1.1".to_string()));
}

#[test]
fn pushes_over_http_with_a_token_and_hides_it_on_failure() {
    const TOKEN: &str = "ghs_tagPushToken42";
    let bare = BareRepo::new("component");
    let seed = TestRepo::new();
    seed.commit_file("a", "a", "feat: first");
    seed.push_to(&bare, "main");
    let http = GitHttpServer::start_with_token(bare.root(), TOKEN);

    let repo = TestRepo::clone_from(&bare.url());
    repo.git(&["remote", "set-url", "origin", &http.url("component")]);
    let opts = TagOptions {
        push: Some("origin".into()),
        credentials: GitCredentials::with_token(TOKEN),
        ..options()
    };
    let created = tag(repo.path(), &opts).unwrap().created.unwrap();
    assert_eq!(created.name, "0.1.0");
    assert_eq!(bare.object_type("refs/tags/0.1.0"), "tag");

    // A wrong token: auth error, token not shown, local tag removed for a retry.
    repo.commit_file("b", "b", "fix: two");
    let wrong = "ghs_notTheRightOne";
    let bad = TagOptions {
        credentials: GitCredentials::with_token(wrong),
        ..opts.clone()
    };
    let err = tag(repo.path(), &bad).unwrap_err();
    assert!(
        matches!(
            &err,
            TagError::Push {
                source: GitError::AuthFailed { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(wrong), "{err}");
    assert!(!repo.tags().contains(&"0.1.1".to_string()));
    assert_eq!(bare.ref_sha("refs/tags/0.1.1"), None);

    // The retry with the right token goes through.
    let created = tag(repo.path(), &opts).unwrap().created.unwrap();
    assert_eq!(created.name, "0.1.1");
    assert!(bare.ref_sha("refs/tags/0.1.1").is_some());
}
