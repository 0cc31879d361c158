//! The progress line end to end: `relbot sync` and `relbot diff` draw it on
//! a terminal's stderr, erase it before the report, and stay silent when
//! stderr is piped (as in CI and every script) or `--no-progress` is given.

mod ship_support;

use std::path::Path;
use std::process::{Command, Output};

use ship_support::{relbot_bin, repo_root, start_k3s_like};

/// Carriage return + erase line: how the status line is drawn and erased.
const CLEAR: &str = "\r\x1b[2K";

fn relbot(kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(relbot_bin())
        .args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("TERM", "xterm-256color")
        .env_remove("RELBOT_NO_PROGRESS")
        .output()
        .expect("run relbot")
}

#[test]
fn piped_stderr_gets_no_progress_control_characters() {
    let sim = start_k3s_like();
    let scratch = tempfile::tempdir().expect("temp dir");
    let kubeconfig = scratch.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    for args in [
        &["sync", "--dry-run", "--source", "manifests-sample"][..],
        &["diff", "--source", "manifests-sample", "--app", "platform"],
        &["sync", "--source", "manifests-sample", "--output", "json"],
    ] {
        let out = relbot(&kubeconfig, scratch.path(), args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {:?}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(!stdout.is_empty(), "{args:?} printed a report");
        for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert!(
                !text.contains('\r') && !text.contains("\x1b[2K"),
                "{args:?}: progress control characters on {name}:\n{text:?}"
            );
        }
    }
}

/// Runs relbot on a pseudo-terminal with util-linux `script`; `None` where
/// it is not installed. stdout and stderr both reach the terminal.
fn on_a_terminal(kubeconfig: &Path, home: &Path, command: &str) -> Option<String> {
    on_a_terminal_with(kubeconfig, home, command, None)
}

fn on_a_terminal_with(
    kubeconfig: &Path,
    home: &Path,
    command: &str,
    no_progress: Option<&str>,
) -> Option<String> {
    Command::new("script").arg("--version").output().ok()?;
    let out = Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1")
        .env("RELBOT_NO_PROGRESS", no_progress.unwrap_or(""))
        .output()
        .expect("run script");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_terminal_sees_the_line_erased_before_the_report_unless_turned_off() {
    let sim = start_k3s_like();
    let scratch = tempfile::tempdir().expect("temp dir");
    let kubeconfig = scratch.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let bin = relbot_bin();
    let command = format!("{} sync --dry-run --source manifests-sample", bin.display());
    let Some(screen) = on_a_terminal(&kubeconfig, scratch.path(), &command) else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    assert!(
        screen.contains(&format!("{CLEAR}rendering manifests")),
        "{screen:?}"
    );
    // The report starts right after the line was erased for the last time,
    // at column 0, and nothing is drawn into it afterwards.
    let report = screen.find("platform @").expect("the plan report");
    let last_clear = screen.rfind(CLEAR).expect("the line is erased");
    assert!(last_clear < report, "{screen:?}");
    // On a cluster that never saw these applications, the notice saying so
    // (known once they are planned) is the report's first line.
    let after_clear = &screen[last_clear + CLEAR.len()..];
    let report_start = after_clear
        .strip_prefix("relbot has never synced platform, monitoring to http://127.0.0.1:")
        .and_then(|rest| rest.split_once("\r\n"))
        .map_or(after_clear, |(_, rest)| rest);
    assert!(
        report_start.starts_with("Planned against http://127.0.0.1:"),
        "the report starts on an erased line: {screen:?}"
    );
    let quiet = on_a_terminal(
        &kubeconfig,
        scratch.path(),
        &format!("{command} --no-progress"),
    )
    .expect("script ran before");
    assert!(quiet.contains("platform @"), "{quiet:?}");
    assert!(!quiet.contains("\x1b[2K"), "{quiet:?}");
    let quiet = on_a_terminal_with(&kubeconfig, scratch.path(), &command, Some("1"))
        .expect("script ran before");
    assert!(quiet.contains("platform @"), "{quiet:?}");
    assert!(
        !quiet.contains("\x1b[2K"),
        "RELBOT_NO_PROGRESS=1: {quiet:?}"
    );
}
