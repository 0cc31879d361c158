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

/// Headless Chromium with `profile`, reaching no network but what the
/// page asks.
fn browser(chromium: &Path, profile: &tempfile::TempDir) -> Command {
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    command
}

/// One browser run with a fresh profile.
fn run(chromium: &Path, args: &[String]) -> Output {
    let profile = tempfile::TempDir::new().unwrap();
    let mut child = browser(chromium, &profile)
        .arg("--hide-scrollbars")
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

/// A page kept open in a headless browser and read while it lives, over
/// the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands in
/// on fd 3, answers out on fd 4, each message ended by a NUL byte). This is
/// what sees a page change after it loaded, e.g. from its event stream;
/// `--dump-dom` only ever sees the page as it loaded.
pub struct LivePage {
    child: std::process::Child,
    commands: std::fs::File,
    messages: std::sync::mpsc::Receiver<serde_json::Value>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl LivePage {
    pub fn open(chromium: &Path, url: &str) -> LivePage {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;

        let profile = tempfile::TempDir::new().unwrap();
        let (to_browser, from_browser) = (pipe(), pipe());
        let (child_reads, child_writes) = (to_browser.0, from_browser.1);
        let mut command = browser(chromium, &profile);
        command
            .arg("--remote-debugging-pipe")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl,
        // dup2). Both ends are first copied above fd 9 so that placing one on
        // 3 cannot overwrite the other; dup2 clears close-on-exec on 3 and 4.
        unsafe {
            command.pre_exec(move || {
                let reads = libc::fcntl(child_reads, libc::F_DUPFD, 10);
                let writes = libc::fcntl(child_writes, libc::F_DUPFD, 10);
                if reads < 0 || writes < 0 || libc::dup2(reads, 3) < 0 || libc::dup2(writes, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("run chromium");
        // SAFETY: each descriptor came from pipe2 and is owned once here; the
        // child's ends close in this process once it runs.
        let (commands, answers) = unsafe {
            drop(OwnedFd::from_raw_fd(child_reads));
            drop(OwnedFd::from_raw_fd(child_writes));
            (
                std::fs::File::from_raw_fd(to_browser.1),
                std::fs::File::from_raw_fd(from_browser.0),
            )
        };
        let (sender, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut answers = std::io::BufReader::new(answers);
            let mut message = Vec::new();
            while answers.read_until(0, &mut message).unwrap_or(0) > 0 {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message)
                    && sender.send(value).is_err()
                {
                    break;
                }
                message.clear();
            }
        });
        let mut page = LivePage {
            child,
            commands,
            messages,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        // The tab of `url` appears a moment after start.
        let started = Instant::now();
        let target = loop {
            let targets = page.call(None, "Target.getTargets", serde_json::json!({}));
            let found = targets["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .map(|t| t["targetId"].as_str().unwrap().to_string());
            match found {
                Some(id) => break id,
                None if started.elapsed() < DEADLINE => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                None => panic!("chromium opened no page for {url}"),
            }
        };
        let attached = page.call(
            None,
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target, "flatten": true }),
        );
        page.session = attached["sessionId"].as_str().unwrap().to_string();
        page
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        let session = self.session.clone();
        let answer = self.call(
            Some(&session),
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "returnByValue": true }),
        );
        if let Some(thrown) = answer.get("exceptionDetails") {
            panic!("{expression} threw in the page: {thrown}");
        }
        answer["result"]["value"].clone()
    }

    /// Polls `expression` until it is true; false at `timeout`.
    pub fn wait_until(&mut self, expression: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.eval(expression) == serde_json::Value::Bool(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        use std::io::Write;
        self.next_id += 1;
        let id = self.next_id;
        let mut command = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&command).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("send to chromium");
        let started = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(started.elapsed());
            let message = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"));
            // Events (no id) and answers to other calls pass by.
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("chromium refused {method}: {error}");
                }
                return message["result"].clone();
            }
        }
    }
}

impl Drop for LivePage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe whose ends close on exec (the child gets copies on 3 and 4).
fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}
