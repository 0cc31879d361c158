//! Kustomizations relbot does not render itself: which binary runs them, and
//! running it with a deadline.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::load::Kustomization;
use crate::manifest::{Manifest, Origin};
use crate::source::problem::{ProblemCode, ValidationProblem};
use crate::source::read::{Locator, RenderedObject};
use crate::source::yaml;

/// What runs kustomizations relbot does not render itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KustomizeTool {
    /// `kustomize build` if on `PATH`, else `kubectl kustomize`, else none.
    #[default]
    Auto,
    /// Never run a binary: unsupported fields are errors.
    Disabled,
    /// This program and leading arguments; the directory is appended
    /// (e.g. `["kubectl", "kustomize"]`).
    Command(Vec<String>),
}

impl KustomizeTool {
    /// The command line to run, if any binary is available.
    pub(super) fn resolve(&self) -> Option<Vec<String>> {
        match self {
            KustomizeTool::Disabled => None,
            KustomizeTool::Command(argv) => Some(argv.clone()),
            KustomizeTool::Auto => {
                if on_path("kustomize") {
                    Some(vec!["kustomize".into(), "build".into()])
                } else if on_path("kubectl") {
                    Some(vec!["kubectl".into(), "kustomize".into()])
                } else {
                    None
                }
            }
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A remote base can make kustomize fetch from the network; a sync must not
/// hang on it forever.
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(120);

/// `Command::output` with a deadline: the child is killed when it passes.
fn output_within(mut command: Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buffer);
            }
            buffer
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no result after {} s; killed", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs the kustomize binary on the top kustomization; its objects point at
/// the kustomization file (line 1), the only place relbot can name.
pub(super) fn run_external(
    root: &Path,
    top: &Kustomization,
    argv: &[String],
) -> Result<Vec<RenderedObject>, Vec<ValidationProblem>> {
    let fail = |message: String| {
        vec![ValidationProblem::error(
            ProblemCode::Kustomize,
            &top.file,
            1,
            message,
        )]
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("empty kustomize command".into()))?;
    let mut command = Command::new(program);
    command.args(args).arg(root.join(&top.dir));
    let output = output_within(command, EXTERNAL_TIMEOUT)
        .map_err(|e| fail(format!("cannot run `{}`: {e}", argv.join(" "))))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            output.status,
            stderr.trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let documents = yaml::parse_documents(&text)
        .map_err(|e| fail(format!("`{}` printed invalid YAML: {e}", argv.join(" "))))?;
    Ok(documents
        .into_iter()
        .map(|d| RenderedObject {
            manifest: Manifest {
                object: d.value,
                origin: Origin {
                    file: top.file.clone(),
                    line: 1,
                },
            },
            locator: Locator::Generated,
        })
        .collect())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_commands_are_killed_at_the_deadline() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2"]);
        let output = output_within(echo, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (output.stdout.as_slice(), output.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        let mut sleep = Command::new("sleep");
        sleep.arg("10");
        let started = Instant::now();
        let err = output_within(sleep, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
