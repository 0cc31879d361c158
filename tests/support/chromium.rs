//! Headless Chromium (Debian's `chromium`) for page tests: the DOM after
//! scripts ran, and screenshots.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A browser that has not answered by then is stuck; it is killed.
const DEADLINE: Duration = Duration::from_secs(60);

pub fn find() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    })
}

/// One browser run with a fresh profile, no network but what the page asks.
fn run(chromium: &Path, args: &[String]) -> Output {
    let profile = tempfile::TempDir::new().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium");
    // Read the pipes on threads so a chatty browser cannot block on them.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The DOM of `url` once it has loaded (deferred scripts have run). No
/// virtual-time budget: it never runs out while a page holds an event
/// stream open.
pub fn dump_dom(chromium: &Path, url: &str) -> String {
    let out = run(chromium, &["--dump-dom".into(), url.into()]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG of `url` at `width`×`height`, written to `path`; returns its size.
pub fn screenshot(chromium: &Path, url: &str, path: &Path, width: u32, height: u32) -> u64 {
    let out = run(
        chromium,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
            url.into(),
        ],
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium said: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    bytes.len() as u64
}
