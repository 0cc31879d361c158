//! Errors say what went wrong and what to do next: a command run where there
//! is no relbot.yaml names the path it looked for and how to point it at one,
//! and changes nothing (exit code 2).

use std::process::Command;

#[test]
fn a_missing_configuration_says_where_relbot_looked_and_what_to_pass() {
    let empty = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["sync", "--dry-run"],
        vec!["validate"],
        vec!["bump", "--dry-run"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_relbot"))
            .args(&args)
            .current_dir(empty.path())
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .output()
            .expect("run relbot");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("relbot.yaml: cannot read"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("hint: relbot looked for relbot.yaml")
                && stderr.contains("--source <dir>")
                && stderr.contains("--config <file>"),
            "{args:?} gives no hint: {stderr}"
        );
    }
}
