//! The docs cannot rot: every `relbot …` command shown in a code block of
//! README.md or docs/*.md is run here (against the sample repository and the
//! API-server emulator, or in a scratch git repository for `relbot tag`),
//! and where a `console` block shows output, that output must appear.
//! Commands that cannot run here are listed in [`NOT_RUN`] with the reason;
//! an entry that no longer matches any command fails the test, so the list
//! cannot go stale either. Relative links must point at files that exist.

mod ship_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ship_support::{relbot_bin, repo_root};

/// Commands shown in the docs that need something this test cannot provide.
const NOT_RUN: &[(&str, &str)] = &[];

/// Subcommands that may still answer "not built yet in this version of
/// relbot" (exit 2): their docs are written ahead of the code landing on
/// main. Once a subcommand is built, its documented commands must succeed.
const MAY_BE_PENDING: &[&str] = &["sync", "diff", "status", "serve", "bump"];

#[derive(Debug, Clone)]
struct DocCommand {
    file: String,
    line: usize,
    command: String,
    /// Output lines a `console` block shows after the command.
    expected: Vec<String>,
}

fn doc_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// `relbot` commands in shell code blocks (sh, bash, shell, console, or no
/// language), continuation lines joined.
fn commands_in(file: &str, text: &str) -> Vec<DocCommand> {
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    let mut current: Option<DocCommand> = None;
    let mut continuing = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            if block.is_some() {
                found.extend(current.take());
                block = None;
            } else {
                block = Some(fence.trim().to_string());
            }
            continue;
        }
        let Some(lang) = block.as_deref() else {
            continue;
        };
        if !matches!(lang, "" | "sh" | "bash" | "shell" | "console") {
            continue;
        }
        if continuing {
            if let Some(c) = current.as_mut() {
                c.command.push(' ');
                c.command.push_str(trimmed.trim_end_matches('\\').trim());
            }
            continuing = trimmed.ends_with('\\');
            continue;
        }
        let console = lang == "console";
        let command = if console {
            trimmed.strip_prefix("$ ")
        } else {
            Some(trimmed)
        };
        match command {
            Some(command) if command.starts_with("relbot ") => {
                found.extend(current.take());
                continuing = command.ends_with('\\');
                current = Some(DocCommand {
                    file: file.to_string(),
                    line: i + 1,
                    command: command.trim_end_matches('\\').trim().to_string(),
                    expected: Vec::new(),
                });
            }
            Some(_) if console => found.extend(current.take()),
            None if console && !trimmed.is_empty() => {
                if let Some(c) = current.as_mut() {
                    c.expected.push(trimmed.to_string());
                }
            }
            None if console => found.extend(current.take()),
            _ => {}
        }
    }
    found.extend(current);
    found
}

fn all_commands() -> Vec<DocCommand> {
    let root = repo_root();
    doc_files()
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("read doc");
            let name = path
                .strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string();
            commands_in(&name, &text)
        })
        .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An application repository like the one docs/tagging.md describes:
/// django-api-0.1.2, then three commits touching services/django-api (one a
/// feature) and one that does not, and a bare `origin` to push to.
fn tagging_fixture(dir: &Path) -> PathBuf {
    let repo = dir.join("app");
    let origin = dir.join("origin.git");
    std::fs::create_dir_all(repo.join("services/django-api")).expect("mkdir");
    git(dir, &["init", "-q", "--bare", origin.to_str().unwrap()]);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Docs Test"]);
    git(&repo, &["config", "user.email", "docs@example.org"]);
    let commit = |file: &str, message: &str| {
        let path = repo.join(file);
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{before}{message}\n")).expect("write");
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", message]);
    };
    commit("services/django-api/app.py", "feat: first release");
    git(
        &repo,
        &["tag", "-a", "django-api-0.1.2", "-m", "django-api 0.1.2"],
    );
    commit("services/django-api/app.py", "feat: flowsheet export");
    commit("README.md", "docs: not part of django-api");
    commit("services/django-api/app.py", "fix: rounding");
    commit("services/django-api/app.py", "chore: tidy");
    git(
        &repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&repo, &["push", "-q", "origin", "main", "--tags"]);
    repo
}

#[test]
fn ship_docs_every_relbot_command_runs() {
    let commands = all_commands();
    assert!(
        commands.len() >= 5,
        "expected the README and docs to show relbot commands, found {commands:#?}"
    );
    for (allowed, _) in NOT_RUN {
        assert!(
            commands.iter().any(|c| c.command == *allowed),
            "NOT_RUN lists {allowed:?}, which no doc shows any more; remove it"
        );
    }

    let scratch = tempfile::tempdir().expect("tempdir");
    let sim = ship_support::start_k3s_like();
    let kubeconfig = scratch.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let app_repo = tagging_fixture(scratch.path());
    let bin_dir = relbot_bin().parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut failures = Vec::new();
    let mut pending = Vec::new();
    let mut ran = 0;
    for doc in &commands {
        let at = format!("{}:{}: `{}`", doc.file, doc.line, doc.command);
        if let Some((_, reason)) = NOT_RUN.iter().find(|(c, _)| *c == doc.command) {
            eprintln!("not run: {at}: {reason}");
            continue;
        }
        let subcommand = doc.command.split_whitespace().nth(1).unwrap_or_default();
        let cwd = if subcommand == "tag" {
            app_repo.clone()
        } else {
            repo_root()
        };
        let out = Command::new("sh")
            .args(["-c", &doc.command])
            .current_dir(&cwd)
            .env("PATH", &path)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", scratch.path())
            .env("NO_COLOR", "1")
            .env_remove("RELBOT_GITHUB_TOKEN")
            .env_remove("RELBOT_GIT_TOKEN")
            .output()
            .expect("run sh");
        ran += 1;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        if code == 2
            && MAY_BE_PENDING.contains(&subcommand)
            && stderr.contains("not built yet in this version of relbot")
        {
            pending.push(at);
            continue;
        }
        // 0: done / in sync; 1: a dry-run or diff found changes.
        if code != 0 && code != 1 {
            failures.push(format!(
                "{at} exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            ));
            continue;
        }
        for line in &doc.expected {
            if !stdout.lines().any(|l| l.trim() == line) {
                failures.push(format!(
                    "{at}: the docs show output {line:?}, but it printed:\n{stdout}"
                ));
            }
        }
    }
    if !pending.is_empty() {
        eprintln!(
            "documented ahead of the code (subcommand not built yet):\n  {}",
            pending.join("\n  ")
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran > pending.len(), "no documented command actually ran");

    // docs/tagging.md's `--push origin` really pushed the tag.
    if commands
        .iter()
        .any(|c| c.command.contains("relbot tag") && c.command.contains("--push origin"))
    {
        let tags = Command::new("git")
            .args(["tag", "--list", "django-api-*"])
            .current_dir(scratch.path().join("origin.git"))
            .output()
            .expect("git tag");
        let tags = String::from_utf8_lossy(&tags.stdout);
        assert!(
            tags.contains("django-api-0.2.0"),
            "origin has tags {tags:?}"
        );
    }
    sim.shutdown();
}

#[test]
fn ship_docs_relative_links_resolve() {
    let root = repo_root();
    let mut broken = Vec::new();
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).expect("read doc");
        let dir = path.parent().expect("dir");
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.starts_with("http")
                || target.starts_with('#')
                || target.starts_with("mailto:")
            {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            if !dir.join(file).exists() {
                broken.push(format!(
                    "{}: link to {target}",
                    path.strip_prefix(&root).unwrap_or(&path).display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn ship_docs_command_extraction() {
    let text = "x\n```sh\nrelbot validate \\\n  --source a\nkubectl apply -k deploy/\n```\n```console\n$ relbot tag --dry-run\nnext 1.0.0\n\n$ git log\n```\n```yaml\nrelbot sync\n```\n";
    let found = commands_in("t.md", text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].command, "relbot validate --source a");
    assert_eq!(found[0].line, 3);
    assert_eq!(found[1].command, "relbot tag --dry-run");
    assert_eq!(found[1].expected, vec!["next 1.0.0"]);
}

#[test]
fn ship_docs_completion_scripts_name_every_subcommand() {
    let help = Command::new(relbot_bin())
        .arg("--help")
        .output()
        .expect("relbot --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let subcommands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .collect();
    assert!(subcommands.contains(&"completion") && subcommands.contains(&"sync"));
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(relbot_bin())
            .args(["completion", shell])
            .output()
            .expect("relbot completion");
        assert!(out.status.success(), "relbot completion {shell} failed");
        let script = String::from_utf8_lossy(&out.stdout);
        for sub in &subcommands {
            assert!(
                script.contains(sub),
                "the {shell} script does not complete `{sub}`"
            );
        }
        assert!(
            script.contains("no-color"),
            "{shell}: global flags are completed"
        );
    }
    // The bash script is valid bash.
    if Command::new("bash").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("relbot.bash");
        let out = Command::new(relbot_bin())
            .args(["completion", "bash"])
            .output()
            .expect("completion");
        std::fs::write(&file, &out.stdout).expect("write");
        let check = Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .expect("bash -n");
        assert!(
            check.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let bad = Command::new(relbot_bin())
        .args(["completion", "tcsh"])
        .output()
        .expect("completion tcsh");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

/// The examples in `--help` texts use only flags and values relbot accepts:
/// each is run with `--help` appended, which clap answers only after
/// parsing every argument before it.
#[test]
fn ship_docs_help_examples_parse() {
    let help = |args: &[&str]| {
        let out = Command::new(relbot_bin())
            .args(args)
            .output()
            .expect("relbot --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    let subcommands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|s| s != "help")
        .collect();
    let mut examples = Vec::new();
    for text in std::iter::once(top.clone())
        .chain(subcommands.iter().map(|s| help(&[s.as_str(), "--help"])))
    {
        let lines = text
            .lines()
            .skip_while(|l| !l.starts_with("Examples:"))
            .skip(1);
        for line in lines.take_while(|l| !l.trim().is_empty()) {
            let line = line.trim();
            if let Some(args) = line.strip_prefix("relbot ") {
                // Only the command itself, not a shell redirection after it.
                let args = args.split(['>', '|']).next().unwrap_or_default();
                examples.push(
                    args.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
    assert!(
        examples.len() >= 8,
        "expected examples in --help, found {examples:?}"
    );
    for example in examples {
        let out = Command::new(relbot_bin())
            .args(&example)
            .arg("--help")
            .output()
            .expect("run example");
        assert!(
            out.status.success(),
            "`relbot {}` does not parse: {}",
            example.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
