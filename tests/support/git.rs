//! Real git repositories and loopback git servers for end-to-end tests.
//!
//! Everything here drives the real `git` command line (never libgit2), so the
//! code under test is checked against an independent implementation:
//!
//! ```ignore
//! #[path = "support/git.rs"]
//! mod git_support;
//! use git_support::{BareRepo, GitDaemon, GitHttpServer, TestRepo};
//!
//! let work = TestRepo::new();
//! work.write("apps/demo/deploy.yaml", "kind: Deployment\n");
//! let first = work.commit("feat: demo");
//! let remote = BareRepo::new("config");           // a bare repo in its own temp dir
//! work.push_to(&remote, "main");
//! let http = GitHttpServer::start(remote.root());  // smart HTTP on 127.0.0.1:<free port>
//! let url = http.url("config");                    // http://127.0.0.1:<port>/config.git
//! ```
//!
//! Commits are deterministic: author, committer and dates are fixed (each
//! commit advances the clock by one minute), and the user's global and system
//! git configuration are ignored. Servers are killed when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The name and e-mail of every test commit.
pub const TEST_AUTHOR: (&str, &str) = ("relbot-test", "relbot-test@localhost");

/// Seconds since the epoch of the first test commit; later ones add a minute.
const EPOCH: u64 = 1_700_000_000;
static CLOCK: AtomicU64 = AtomicU64::new(0);

/// A `git` command with a clean, deterministic environment.
pub fn git_command(dir: &Path) -> Command {
    let tick = CLOCK.fetch_add(60, Ordering::SeqCst);
    let date = format!("{} +0000", EPOCH + tick);
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", TEST_AUTHOR.0)
        .env("GIT_AUTHOR_EMAIL", TEST_AUTHOR.1)
        .env("GIT_COMMITTER_NAME", TEST_AUTHOR.0)
        .env("GIT_COMMITTER_EMAIL", TEST_AUTHOR.1)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    cmd
}

/// Runs `git args…` in `dir`, panics with git's stderr on failure, returns
/// trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Like [`git`] but returns the failure instead of panicking.
pub fn try_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = git_command(dir)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A `file://` URL for a local path.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A working repository (with a worktree) in its own temporary directory,
/// on branch `main`.
pub struct TestRepo {
    _dir: TempDir,
    path: PathBuf,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("work");
        std::fs::create_dir_all(&path).unwrap();
        git(&path, &["init", "-q", "-b", "main"]);
        git(&path, &["config", "commit.gpgsign", "false"]);
        git(&path, &["config", "tag.gpgsign", "false"]);
        Self { _dir: dir, path }
    }

    /// A clone of `url` (any URL git understands), checked out at its default branch.
    pub fn clone_from(url: &str) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("work");
        git(dir.path(), &["clone", "-q", url, "work"]);
        git(&path, &["config", "commit.gpgsign", "false"]);
        Self { _dir: dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file://` URL of this repository.
    pub fn url(&self) -> String {
        file_url(&self.path)
    }

    /// Runs git in this repository (see [`git`]).
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path, args)
    }

    /// Writes a file (creating parent directories); not staged until [`Self::commit`].
    pub fn write(&self, rel: &str, contents: &str) -> &Self {
        let file = self.path.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, contents).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path.join(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let file = self.path.join(rel);
        if file.is_dir() {
            std::fs::remove_dir_all(file).unwrap();
        } else {
            std::fs::remove_file(file).unwrap();
        }
        self
    }

    /// Stages everything and commits (empty commits allowed); returns the full SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// Writes one file and commits it.
    pub fn commit_file(&self, rel: &str, contents: &str, message: &str) -> String {
        self.write(rel, contents);
        self.commit(message)
    }

    /// Full SHA of HEAD.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Full SHA of any revision.
    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", &format!("{rev}^{{commit}}")])
    }

    /// Lightweight tag at HEAD.
    pub fn tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    /// Annotated tag at HEAD.
    pub fn tag_annotated(&self, name: &str, message: &str) {
        self.git(&["tag", "-a", name, "-m", message]);
    }

    /// Creates a branch at HEAD and switches to it.
    pub fn checkout_new(&self, branch: &str) {
        self.git(&["checkout", "-q", "-b", branch]);
    }

    pub fn checkout(&self, rev: &str) {
        self.git(&["checkout", "-q", rev]);
    }

    /// `git merge --no-ff branch -m message`; returns the merge commit.
    pub fn merge(&self, branch: &str, message: &str) -> String {
        self.git(&["merge", "-q", "--no-ff", branch, "-m", message]);
        self.head()
    }

    pub fn add_remote(&self, name: &str, url: &str) {
        self.git(&["remote", "add", name, url]);
    }

    /// Pushes `refspec` (e.g. `main`, `--tags`, `+main:main`) to a bare repo.
    pub fn push_to(&self, remote: &BareRepo, refspec: &str) {
        self.git(&["push", "-q", &remote.url(), refspec]);
    }

    /// Names of all tags.
    pub fn tags(&self) -> Vec<String> {
        let out = self.git(&["tag", "--list"]);
        out.lines().map(str::to_string).collect()
    }
}

/// A bare repository `<root>/<name>.git` in its own temporary directory (the
/// directory a [`GitDaemon`] or [`GitHttpServer`] serves). Push is enabled
/// for every transport, non-fast-forward pushes allowed.
pub struct BareRepo {
    _dir: TempDir,
    root: PathBuf,
    name: String,
}

impl BareRepo {
    /// An empty bare repository whose HEAD points at `main`.
    pub fn new(name: &str) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let root = dir.path().to_path_buf();
        let bare = Self {
            _dir: dir,
            root,
            name: name.to_string(),
        };
        bare.init_in_root(name);
        bare
    }

    /// Another bare repository `<root>/<name>.git` next to this one (served
    /// by the same server).
    pub fn sibling(&self, name: &str) -> PathBuf {
        self.init_in_root(name)
    }

    fn init_in_root(&self, name: &str) -> PathBuf {
        let path = self.root.join(format!("{name}.git"));
        git(
            &self.root,
            &["init", "-q", "--bare", "-b", "main", path.to_str().unwrap()],
        );
        git(&path, &["config", "http.receivepack", "true"]);
        git(&path, &["config", "daemon.receivepack", "true"]);
        git(&path, &["config", "receive.denyNonFastForwards", "false"]);
        path
    }

    /// The directory holding `<name>.git`: what servers are rooted at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the bare repository itself.
    pub fn path(&self) -> PathBuf {
        self.root.join(format!("{}.git", self.name))
    }

    /// `file://` URL of the bare repository.
    pub fn url(&self) -> String {
        file_url(&self.path())
    }

    /// Runs git inside the bare repository.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path(), args)
    }

    /// SHA a ref points at (`main`, `refs/tags/v1`), or None.
    pub fn ref_sha(&self, name: &str) -> Option<String> {
        try_git(&self.path(), &["rev-parse", "--verify", "-q", name]).ok()
    }

    /// Object type of a ref's target (`commit`, `tag`, …).
    pub fn object_type(&self, name: &str) -> String {
        self.git(&["cat-file", "-t", name])
    }
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_until_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port}");
}

/// `git daemon` serving every repository under a directory over `git://`,
/// push enabled, bound to 127.0.0.1 on a free port. Killed on drop.
pub struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    pub fn start(root: &Path) -> Self {
        let port = free_port();
        let root_arg = root.to_str().unwrap();
        let child = git_command(root)
            .args([
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={root_arg}"),
                "--export-all",
                "--enable=receive-pack",
                root_arg,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let daemon = Self { child, port };
        wait_until_listening(port, "git daemon");
        daemon
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `git://127.0.0.1:<port>/<name>.git`
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Smart HTTP: a small HTTP/1.1 server on 127.0.0.1 (std only) that hands
/// every request to the real `git http-backend` CGI. Optional Basic auth:
/// with a token set, a request must carry a password equal to it (any user
/// name, like GitHub's `x-access-token:<token>`), otherwise it gets 401.
/// Stopped on drop.
pub struct GitHttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    state: Arc<HttpState>,
    accept: Option<JoinHandle<()>>,
}

struct HttpState {
    root: PathBuf,
    token: Option<String>,
    /// Every `Authorization` header value received (to assert what was sent).
    auth_seen: std::sync::Mutex<Vec<String>>,
    requests: AtomicU64,
}

impl GitHttpServer {
    /// Serves `root/<name>.git` without authentication.
    pub fn start(root: &Path) -> Self {
        Self::start_inner(root, None)
    }

    /// Serves `root/<name>.git`, requiring Basic auth with password `token`.
    pub fn start_with_token(root: &Path, token: &str) -> Self {
        Self::start_inner(root, Some(token.to_string()))
    }

    fn start_inner(root: &Path, token: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(HttpState {
            root: root.to_path_buf(),
            token,
            auth_seen: Default::default(),
            requests: AtomicU64::new(0),
        });
        let accept = {
            let stop = stop.clone();
            let state = state.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || serve_connection(conn, &state));
                }
            })
        };
        Self {
            port,
            stop,
            state,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/<name>.git`
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    /// `http://<user>:<password>@127.0.0.1:<port>/<name>.git`
    pub fn url_with_credentials(&self, name: &str, user: &str, password: &str) -> String {
        format!(
            "http://{user}:{password}@127.0.0.1:{}/{name}.git",
            self.port
        )
    }

    /// `Authorization` header values received so far.
    pub fn authorizations_seen(&self) -> Vec<String> {
        self.state.auth_seen.lock().unwrap().clone()
    }

    /// Number of HTTP requests served so far.
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn serve_connection(conn: TcpStream, state: &HttpState) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut writer = write_half;
    // Keep-alive: serve requests until the client closes the connection.
    while let Some(request) = read_request(&mut reader, &mut writer) {
        state.requests.fetch_add(1, Ordering::SeqCst);
        let response = respond(&request, state);
        if writer.write_all(&response).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if request
        .header("Expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    if request
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size_hex = size_line.trim().split(';').next()?;
            let size = usize::from_str_radix(size_hex, 16).ok()?;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t).ok()? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).ok()?;
            request.body.extend_from_slice(&chunk);
            let mut crlf = String::new();
            reader.read_line(&mut crlf).ok()?;
        }
    } else if let Some(len) = request.header("Content-Length") {
        let len: usize = len.parse().ok()?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        request.body = body;
    }
    Some(request)
}

fn simple_response(status: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n");
    for (k, v) in extra_headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn decode_basic_password(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Standard base64 (with padding) — enough for Basic auth headers.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in input.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn respond(request: &Request, state: &HttpState) -> Vec<u8> {
    let authorization = request.header("Authorization").map(str::to_string);
    if let Some(a) = &authorization {
        state.auth_seen.lock().unwrap().push(a.clone());
    }
    let mut remote_user = "anonymous".to_string();
    if let Some(token) = &state.token {
        let accepted = authorization
            .as_deref()
            .and_then(decode_basic_password)
            .filter(|(_, password)| password == token);
        match accepted {
            Some((user, _)) => remote_user = user,
            None => {
                return simple_response(
                    "401 Unauthorized",
                    &[("WWW-Authenticate", "Basic realm=\"relbot-test\"")],
                );
            }
        }
    }

    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", request.header("Content-Type").unwrap_or(""))
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", &remote_user)
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, var) in [
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
        ("Accept", "HTTP_ACCEPT"),
    ] {
        if let Some(v) = request.header(header) {
            cmd.env(var, v);
        }
    }
    let Ok(mut child) = cmd.spawn() else {
        return simple_response("500 Internal Server Error", &[]);
    };
    // Write the body from another thread so a large response cannot deadlock us.
    let mut stdin = child.stdin.take().unwrap();
    let body = request.body.clone();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output();
    let _ = writer.join();
    let Ok(output) = output else {
        return simple_response("500 Internal Server Error", &[]);
    };
    cgi_to_http(&output.stdout)
}

/// Turns a CGI response (headers, blank line, body) into an HTTP/1.1 response.
fn cgi_to_http(cgi: &[u8]) -> Vec<u8> {
    let (head, body) = match find_subsequence(cgi, b"\r\n\r\n") {
        Some(i) => (&cgi[..i], &cgi[i + 4..]),
        None => match find_subsequence(cgi, b"\n\n") {
            Some(i) => (&cgi[..i], &cgi[i + 2..]),
            None => return simple_response("502 Bad Gateway", &[]),
        },
    };
    let mut status = "200 OK".to_string();
    let mut headers = String::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("Status") {
            status = v.trim().to_string();
        } else {
            headers.push_str(&format!("{}: {}\r\n", k.trim(), v.trim()));
        }
    }
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn find_subsequence(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
