//! The first ten minutes, as a new user spends them: every subcommand run
//! from a cluster-config checkout's root with no flags, and from a plain
//! folder of manifests, through the built binary. Exit codes and the first
//! line of output are what a person sees first, so they are what is pinned.
//! A last test feeds bad inputs and fails on library internals leaking into
//! what the user reads.

#[path = "support/bump_samples.rs"]
mod bump_samples;
#[path = "support/registry_double.rs"]
mod registry_double;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use bump_samples::{SAMPLE_TAGS, write_sample_tree};
use kubesim::testing::TestCluster;
use registry_double::{DoubleConfig, RegistryDouble};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn first_stdout_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or_default()
    }

    fn first_stderr_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or_default()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `relbot ARGS` in `dir`, as a user with no cluster configured (unless
/// `kubeconfig` is given) and no tokens.
fn relbot_in(dir: &Path, args: &[&str], kubeconfig: Option<&Path>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relbot"));
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env_remove("RELBOT_GITHUB_TOKEN")
        .env_remove("RELBOT_LOG")
        .env_remove("RUST_LOG");
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    let out = command.output().expect("run relbot");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The sample repository, with docker.io reached through `mirror` so the
/// tests need no network.
fn checkout(mirror: &str) -> tempfile::TempDir {
    let tree = tempfile::tempdir().expect("tempdir");
    write_sample_tree(
        tree.path(),
        &format!("\nregistries:\n  - host: docker.io\n    mirror: {mirror}\n"),
    );
    tree
}

async fn registry() -> RegistryDouble {
    let mut repositories = HashMap::new();
    for (repository, tags) in SAMPLE_TAGS {
        repositories.insert(
            repository.to_string(),
            tags.iter().map(|t| t.to_string()).collect(),
        );
    }
    RegistryDouble::start(DoubleConfig {
        repositories,
        ..Default::default()
    })
    .await
}

/// Runs blocking binary calls off the test's runtime (the registry double
/// and the emulator answer on it).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_from_the_repository_root_with_no_flags() {
    let registry = registry().await;
    let tree = checkout(&registry.host());
    let root = tree.path().to_path_buf();

    let runs = blocking(move || {
        let run = |args: &[&str]| relbot_in(&root, args, None);
        (
            run(&["validate"]),
            run(&["sync", "--dry-run"]),
            run(&["diff"]),
            run(&["bump", "--dry-run"]),
            run(&["bump", "--dry-run", "--config", "relbot.yaml"]),
            run(&["bump", "--dry-run", "--output", "diff"]),
            run(&["status"]),
            (root, tree),
        )
    })
    .await;
    let (validate, dry_run, diff, bump, bump_config, bump_diff, status, (root, _tree)) = runs;

    assert_eq!(validate.code, 0, "{validate}");
    assert_eq!(
        validate.first_stdout_line(),
        "relbot.yaml: valid (2 applications, 19 objects, 5 policies)",
        "{validate}"
    );
    // Problems are named from where the user stands: no `./` in front.
    assert!(
        validate
            .stderr
            .starts_with("platform/ingress/middlewares.yaml:4: warning:"),
        "{validate}"
    );

    for plan in [&dry_run, &diff] {
        assert_eq!(plan.code, 1, "{plan}");
        assert!(
            plan.first_stdout_line()
                .starts_with("No cluster was consulted (no cluster configured"),
            "{plan}"
        );
    }

    // The policies directory and the files are found from the root: every
    // policy is scanned (no "ImagePolicy x: : No such file or directory").
    for bump in [&bump, &bump_config] {
        assert_eq!(bump.code, 1, "{bump}");
        assert_eq!(
            bump.first_stdout_line(),
            "django-api: docker.io/ahuora/django-api 0.0.17 → 0.0.18 (platform/api/deployment.yaml)",
            "{bump}"
        );
        assert!(!bump.stderr.contains("failed"), "{bump}");
    }

    // --output diff: a patch on stdout that `git apply` takes, summary on stderr.
    assert_eq!(bump_diff.code, 1, "{bump_diff}");
    assert_eq!(
        bump_diff.first_stdout_line(),
        "# django-api: docker.io/ahuora/django-api 0.0.17 → 0.0.18",
        "{bump_diff}"
    );
    assert!(
        bump_diff.stdout.contains(
            "diff --git a/platform/api/deployment.yaml b/platform/api/deployment.yaml\n--- a/platform/api/deployment.yaml\n+++ b/platform/api/deployment.yaml\n@@ "
        ) && bump_diff.stdout.contains("\n-          image: ahuora/django-api:0.0.17\n+          image: ahuora/django-api:0.0.18\n"),
        "{bump_diff}"
    );
    assert!(
        bump_diff
            .stderr
            .contains("django-api: docker.io/ahuora/django-api 0.0.17 → 0.0.18")
            && !bump_diff
                .stdout
                .contains("platform/api/deployment.yaml:28:"),
        "the old → new lines belong on stderr: {bump_diff}"
    );
    let patch: String = bump_diff
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .expect("git")
    };
    std::fs::write(root.join("bump.patch"), patch).unwrap();
    let check = git(&["apply", "--check", "bump.patch"]);
    assert!(
        check.status.success(),
        "git apply --check: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    assert_eq!(status.code, 2, "{status}");
    assert!(
        status
            .first_stderr_line()
            .starts_with("error: no cluster configured"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_folder_is_one_application() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("web-app");
    std::fs::create_dir_all(folder.join("db")).unwrap();
    std::fs::write(
        folder.join("deploy.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: b\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("db/service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  ports: [{port: 5432}]\n",
    )
    .unwrap();
    let parent = dir.path().to_path_buf();

    let (validate, named, dry_run, diff, sync, inside, wrong_flag) = blocking(move || {
        let run = |args: &[&str]| relbot_in(&parent, args, None);
        (
            run(&["validate", "--source", "web-app"]),
            run(&[
                "validate",
                "--source",
                "web-app",
                "--namespace",
                "shop",
                "--app-name",
                "storefront",
                "-o",
                "json",
            ]),
            run(&["sync", "--dry-run", "--source", "web-app"]),
            run(&["diff", "--source", "web-app"]),
            run(&["sync", "--source", "web-app"]),
            relbot_in(&parent.join("web-app"), &["validate"], None),
            relbot_in(
                &parent.join("web-app"),
                &["validate", "--config", "x.yaml", "--namespace", "a"],
                None,
            ),
        )
    })
    .await;

    let announced = "No relbot.yaml in web-app: reading it as one application \"web-app\" (plain YAML, recursively; namespace \"default\" for objects without one; --app-name/--namespace change these).";
    assert_eq!(validate.code, 0, "{validate}");
    assert_eq!(validate.first_stderr_line(), announced, "{validate}");
    assert_eq!(
        validate.first_stdout_line(),
        "web-app: valid (1 application, 2 objects)",
        "{validate}"
    );

    assert_eq!(named.code, 0, "{named}");
    assert!(
        named
            .first_stderr_line()
            .contains("application \"storefront\"")
            && named.first_stderr_line().contains("namespace \"shop\""),
        "{named}"
    );
    let json: serde_json::Value = serde_json::from_str(&named.stdout).expect("JSON");
    assert_eq!(json["applications"][0]["name"], "storefront");

    for plan in [&dry_run, &diff] {
        assert_eq!(plan.code, 1, "{plan}");
        assert_eq!(plan.first_stderr_line(), announced, "{plan}");
        assert!(
            plan.stdout.contains("would create ConfigMap default/web")
                && plan.stdout.contains("would create Service default/db")
                && plan.stdout.contains("db/service.yaml:1"),
            "{plan}"
        );
    }

    // Writing needs an application a relbot.yaml names; the way there is given.
    assert_eq!(sync.code, 2, "{sync}");
    assert!(
        sync.stderr.contains("error: web-app has no relbot.yaml")
            && sync
                .stderr
                .contains("    - name: web-app\n      path: .\n      namespace: default"),
        "{sync}"
    );

    // Standing in the folder is the same as naming it.
    assert_eq!(inside.code, 0, "{inside}");
    assert!(
        inside
            .first_stderr_line()
            .starts_with("No relbot.yaml in .: reading it as one application \"web-app\""),
        "{inside}"
    );

    // Flags that would be ignored are refused, not silently dropped.
    assert_eq!(wrong_flag.code, 2, "{wrong_flag}");
    assert!(
        wrong_flag
            .first_stderr_line()
            .starts_with("error: --namespace and --app-name are for a folder without relbot.yaml"),
        "{wrong_flag}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_relbot_never_synced_is_said_plainly_with_the_next_command() {
    let tc = TestCluster::acquire("first-ten").await;
    let Some(_sim) = tc.require_emulator("a cluster relbot has never synced") else {
        return;
    };
    let kubeconfig = tc.kubeconfig_path().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("apps/web")).unwrap();
    std::fs::write(
        dir.path().join("relbot.yaml"),
        "applications:\n  - name: web\n    path: apps/web\n    namespace: web\n    sync: {createNamespace: true}\nstatus:\n  namespace: relbot-first-ten\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("apps/web/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: b\n",
    )
    .unwrap();
    let root = dir.path().to_path_buf();

    let (status, diff, sync, after) = blocking(move || {
        let run = |args: &[&str]| relbot_in(&root, args, Some(&kubeconfig));
        (
            run(&["status"]),
            run(&["diff"]),
            run(&["sync"]),
            run(&["status"]),
        )
    })
    .await;

    assert_eq!(status.code, 0, "{status}");
    assert!(
        status
            .first_stdout_line()
            .starts_with("relbot has never synced to http://")
            && status
                .first_stdout_line()
                .ends_with("(no sync results in namespace relbot-first-ten)."),
        "{status}"
    );
    assert!(
        status.stdout.contains(
            "Next: `relbot diff` shows what a sync would change; `relbot sync` applies it."
        ),
        "{status}"
    );

    assert_eq!(diff.code, 1, "{diff}");
    assert!(
        diff.first_stderr_line()
            .starts_with("relbot has never synced web to http://")
            && diff
                .first_stderr_line()
                .ends_with("`relbot sync` applies it."),
        "{diff}"
    );

    assert_eq!(sync.code, 0, "{sync}");
    assert!(
        sync.first_stderr_line()
            .starts_with("First sync of web to http://"),
        "{sync}"
    );

    assert_eq!(after.code, 0, "{after}");
    assert!(
        after.first_stdout_line().starts_with("web"),
        "after a sync, status shows its result: {after}"
    );
}

/// Words that only make sense to someone reading relbot's dependencies.
fn leaks(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            line.contains("Some(")
                || line.contains("{ ")
                || line.contains("Options")
                || line.contains("budget")
                // An io error must say which path it is about.
                || (line.contains("os error") && !line.contains('/') && !line.contains(".yaml"))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn bad_inputs_are_described_in_the_users_words() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("apps");
    std::fs::create_dir_all(&app).unwrap();
    // A "billion laughs": each alias list repeats the one before ten times.
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g"])
    {
        bomb.push_str(&format!(
            "  {name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    let files = [
        (
            "two-objects.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        ),
        (
            "duplicate.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: y}\n  name: b\n",
        ),
        ("bomb.yaml", bomb.as_str()),
        ("string.yaml", "apiVersion v1 kind ConfigMap\n"),
        (
            "list.yaml",
            "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
        ),
        ("comments.yaml", "# nothing yet\n"),
    ];
    for (name, text) in files {
        std::fs::write(app.join(name), text).unwrap();
    }
    std::fs::write(
        dir.path().join("relbot.yaml"),
        "applications:\n  - name: apps\n    path: apps\n    namespace: apps\n    name: twice\n",
    )
    .unwrap();
    let config = relbot_in(dir.path(), &["validate"], None);
    assert_eq!(config.code, 2, "{config}");
    assert!(
        config
            .stderr
            .starts_with("relbot.yaml:5:5: duplicate key `name` (first at line 2)"),
        "{config}"
    );

    std::fs::write(
        dir.path().join("relbot.yaml"),
        "applications:\n  - name: apps\n    path: apps\n    namespace: apps\npolicies: missing-dir\n",
    )
    .unwrap();
    let policies = relbot_in(dir.path(), &["validate"], None);
    assert_eq!(policies.code, 2, "{policies}");
    assert!(
        policies
            .stderr
            .starts_with("./missing-dir: cannot read policies directory"),
        "{policies}"
    );

    std::fs::write(
        dir.path().join("relbot.yaml"),
        "applications:\n  - name: apps\n    path: apps\n    namespace: apps\n",
    )
    .unwrap();
    let manifests = relbot_in(dir.path(), &["validate"], None);
    assert_eq!(manifests.code, 2, "{manifests}");
    for expected in [
        "apps/two-objects.yaml:5:1: error: duplicate key `apiVersion` (first at line 1): two objects in one document? Put `---` on its own line before line 5",
        "apps/duplicate.yaml:6:3: error: duplicate key `name` (first at line 4)",
        "apps/bomb.yaml:",
        "the file has more than",
        "apps/string.yaml:1: error: this document is the plain string \"apiVersion v1 kind ConfigMap\"",
        "apps/list.yaml:1: error: this document is a list of 1 item,",
    ] {
        assert!(
            manifests.stderr.contains(expected),
            "missing {expected:?}:\n{manifests}"
        );
    }
    // A file of only comments is fine: a note, not an error.
    assert!(
        manifests
            .stderr
            .contains("apps/comments.yaml: info: skipped: holds no Kubernetes objects"),
        "{manifests}"
    );
    assert!(
        manifests
            .stderr
            .ends_with("5 error(s) found; nothing was changed.\n"),
        "{manifests}"
    );

    let mut all = String::new();
    for run in [&config, &policies, &manifests] {
        all.push_str(&run.stdout);
        all.push_str(&run.stderr);
    }
    assert_eq!(leaks(&all), Vec::<String>::new(), "{all}");
}
