//! The git source: keeps a local copy of the configured repository in a cache
//! directory and checks out the branch head or a pinned revision.
//!
//! - First [`GitSource::sync`] initialises `cache_dir/<name>-<hash of url>` and
//!   fetches; later calls fetch incrementally (only the configured branch and
//!   tags travel) and force-check-out the target commit, so the worktree is
//!   exactly the commit's tree (local edits and stray files are removed).
//! - `file://` URLs, local paths, `git://` and `http(s)://` work. For http(s)
//!   a token from `RELBOT_GIT_TOKEN` (or `RELBOT_GITHUB_TOKEN`) is offered as
//!   user `x-access-token`, the way GitHub expects installation and personal
//!   tokens. The remote URL is never written to the cache's config, so a URL
//!   carrying credentials does not end up on disk.
//! - Concurrent processes sharing a cache serialise on `<name>.lock` (an OS
//!   file lock, released when the process dies).
//!
//! Everything here blocks (libgit2); async callers use `spawn_blocking`.
//! Tokens never appear in errors: every message from libgit2 is passed
//! through [`GitCredentials::redact`].

use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{
    AutotagOption, CredentialType, FetchOptions, FetchPrune, Oid, RemoteCallbacks, Repository,
    build::CheckoutBuilder,
};
use sha2::{Digest, Sha256};

use crate::config::RepoConfig;
use crate::redact::redact_userinfo;

pub mod push;

/// The user name offered with a token over http(s), as GitHub expects.
pub const TOKEN_USER: &str = "x-access-token";

/// Environment variables read by [`GitCredentials::from_env`], in order.
pub const TOKEN_ENV_VARS: [&str; 2] = ["RELBOT_GIT_TOKEN", "RELBOT_GITHUB_TOKEN"];

/// Something that went wrong talking to a git remote or the local cache.
/// URLs in messages have any password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid repository URL \"{url}\": {reason}")]
    BadUrl { url: String, reason: String },

    #[error(
        "cannot reach git repository {url}: {detail} (check the URL and that the server is up)"
    )]
    Unreachable { url: String, detail: String },

    #[error("authentication to {url} failed: {detail}")]
    AuthFailed { url: String, detail: String },

    #[error(
        "branch \"{branch}\" not found in {url}: push the branch or set repo.branch to one that exists"
    )]
    BranchNotFound { branch: String, url: String },

    #[error(
        "revision \"{revision}\" not found in {url}: expected a commit SHA, tag or branch that exists in the remote"
    )]
    RevisionNotFound { revision: String, url: String },

    #[error("\"{name}\" is not a valid git {what} name")]
    InvalidName { what: &'static str, name: String },

    #[error("git cache {}: {detail}", path.display())]
    Cache { path: PathBuf, detail: String },

    #[error("cannot lock git cache {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{action} {url} failed: {detail}")]
    Remote {
        action: &'static str,
        url: String,
        detail: String,
    },
}

/// A token for http(s) remotes. `Debug` never shows it.
#[derive(Clone, Default)]
pub struct GitCredentials {
    token: Option<String>,
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentials")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl GitCredentials {
    /// No credentials: public repositories and local paths.
    pub fn none() -> Self {
        Self::default()
    }

    /// A token offered as `x-access-token:<token>` over http(s).
    pub fn with_token(token: impl Into<String>) -> Self {
        let token = token.into();
        Self {
            token: (!token.is_empty()).then_some(token),
        }
    }

    /// `RELBOT_GIT_TOKEN`, else `RELBOT_GITHUB_TOKEN`; empty values are ignored.
    pub fn from_env() -> Self {
        let token = TOKEN_ENV_VARS
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find(|value| !value.trim().is_empty());
        Self {
            token: token.map(|t| t.trim().to_string()),
        }
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Removes secrets from text meant for people: the token itself and the
    /// password part of any `scheme://user:password@host` in it.
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_userinfo(text);
        if let Some(token) = &self.token {
            out = out.replace(token.as_str(), "***");
        }
        out
    }

    /// Remote callbacks that answer libgit2's credential requests with the
    /// token (user `x-access-token`, or the user named in the URL) exactly
    /// once; a second request means the server rejected it, and is refused so
    /// libgit2 stops instead of looping. `auth` records what happened, for
    /// [`classify_remote_error`].
    pub fn remote_callbacks<'a>(&'a self, auth: &'a AuthAttempt) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |_url, username_from_url, allowed| {
            auth.requests.set(auth.requests.get() + 1);
            let refuse = |why: &str| {
                auth.refused.set(true);
                Err(git2::Error::from_str(why))
            };
            if auth.requests.get() > 1 {
                return refuse("the server rejected the credentials");
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                return match &self.token {
                    Some(token) => {
                        auth.token_offered.set(true);
                        let user = username_from_url
                            .filter(|u| !u.is_empty())
                            .unwrap_or(TOKEN_USER);
                        git2::Cred::userpass_plaintext(user, token)
                    }
                    None => refuse("the server requires credentials and no token is set"),
                };
            }
            if allowed.contains(CredentialType::USERNAME) {
                return git2::Cred::username(username_from_url.unwrap_or("git"));
            }
            refuse(
                "the server asked for a kind of credentials relbot does not support (only http(s) tokens are)",
            )
        });
        callbacks
    }
}

/// What the credential callback saw during one remote operation.
#[derive(Debug, Default)]
pub struct AuthAttempt {
    requests: Cell<u32>,
    token_offered: Cell<bool>,
    /// The callback refused: no token, or the offered one was rejected.
    refused: Cell<bool>,
}

impl AuthAttempt {
    /// Whether the server asked for credentials at all.
    pub fn requested(&self) -> bool {
        self.requests.get() > 0
    }

    /// Whether authentication failed: no token to offer, or the server
    /// asked again after getting it.
    pub fn failed(&self) -> bool {
        self.refused.get()
    }
}

/// Maps a libgit2 error from a remote operation (`action` is e.g. "fetch
/// from", "push to") to a [`GitError`] a person can act on.
pub fn classify_remote_error(
    err: &git2::Error,
    action: &'static str,
    url: &str,
    auth: &AuthAttempt,
    credentials: &GitCredentials,
) -> GitError {
    let url = redact_userinfo(url);
    let message = credentials.redact(err.message());
    let lower = message.to_ascii_lowercase();
    if auth.failed() || err.code() == git2::ErrorCode::Auth || lower.contains("401") {
        let detail = if auth.token_offered.get() {
            "the server rejected the token (check that RELBOT_GIT_TOKEN is valid, not expired, and may read this repository)".to_string()
        } else if credentials.has_token() {
            format!("{message} (the token was not accepted)")
        } else {
            "the server requires credentials and no token is set: export RELBOT_GIT_TOKEN (or RELBOT_GITHUB_TOKEN)".to_string()
        };
        return GitError::AuthFailed { url, detail };
    }
    let unreachable_class = matches!(
        err.class(),
        git2::ErrorClass::Net | git2::ErrorClass::Os | git2::ErrorClass::Ssl
    );
    let not_found = lower.contains("404")
        || lower.contains("could not find repository")
        || lower.contains("not found")
        || lower.contains("does not appear to be a git repository")
        || lower.contains("failed to resolve path");
    if unreachable_class || not_found || lower.contains("failed to connect") {
        let detail = if not_found {
            format!("no repository there ({message})")
        } else {
            message
        };
        return GitError::Unreachable { url, detail };
    }
    GitError::Remote {
        action,
        url,
        detail: message,
    }
}

/// A checked-out revision of the source repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// Worktree holding exactly the files of `revision`.
    pub path: PathBuf,
    /// Full commit SHA checked out.
    pub revision: String,
    /// The configured branch.
    pub branch: String,
    /// The commit this cache had checked out before, when it differs from
    /// `revision` (None on first sync and when nothing changed).
    pub changed_from: Option<String>,
}

/// Where the remote is, as libgit2 needs it and as people may see it.
#[derive(Debug, Clone)]
struct RemoteLocation {
    /// Given to libgit2 (may carry credentials).
    fetch_url: String,
    /// Shown in messages: password replaced by `***`.
    display: String,
    /// Cache directory name: readable stem plus a hash of the credential-free URL.
    cache_name: String,
    /// The password of `https://user:password@host/…`, used as the token.
    url_password: Option<String>,
    /// A local repository (local path or file:// URL), checked before fetching.
    local_path: Option<PathBuf>,
}

impl RemoteLocation {
    fn parse(raw: &str) -> Result<Self, GitError> {
        let trimmed = raw.trim();
        let bad = |reason: &str| GitError::BadUrl {
            url: redact_userinfo(trimmed),
            reason: reason.to_string(),
        };
        if trimmed.is_empty() {
            return Err(bad("the URL is empty; set repo.url in relbot.yaml"));
        }
        const NO_SSH: &str =
            "ssh remotes are not supported; use an https:// URL with a token in RELBOT_GIT_TOKEN";
        if trimmed.contains("://") {
            let url = url::Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
            match url.scheme() {
                "http" | "https" | "git" => {
                    if url.host_str().is_none_or(str::is_empty) {
                        return Err(bad("the URL has no host"));
                    }
                }
                "file" => {
                    if url.path().is_empty() || url.path() == "/" {
                        return Err(bad("a file:// URL needs a path to a repository"));
                    }
                }
                "ssh" | "git+ssh" | "ssh+git" => return Err(bad(NO_SSH)),
                other => {
                    return Err(bad(&format!(
                        "unsupported scheme \"{other}\" (use https://, http://, git:// or file://)"
                    )));
                }
            }
            let mut anonymous = url.clone();
            let _ = anonymous.set_username("");
            let _ = anonymous.set_password(None);
            Ok(Self {
                fetch_url: trimmed.to_string(),
                display: redact_userinfo(trimmed),
                cache_name: cache_name(anonymous.as_str()),
                url_password: url.password().map(percent_decode).filter(|p| !p.is_empty()),
                local_path: (url.scheme() == "file")
                    .then(|| url.to_file_path().ok())
                    .flatten(),
            })
        } else if looks_like_scp(trimmed) {
            Err(bad(NO_SSH))
        } else {
            // A local path; relative ones are taken from the working directory.
            let absolute = std::path::absolute(trimmed).map_err(|e| bad(&e.to_string()))?;
            let display = absolute.display().to_string();
            Ok(Self {
                fetch_url: display.clone(),
                cache_name: cache_name(&display),
                display,
                url_password: None,
                local_path: Some(absolute),
            })
        }
    }
}

/// `%41` → `A` in URL user info (tokens are usually plain, but be exact).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `git@github.com:org/repo.git`: a colon before any slash, not a Windows drive.
fn looks_like_scp(s: &str) -> bool {
    match s.find(':') {
        Some(colon) => {
            let before = &s[..colon];
            !before.contains('/') && before.len() > 1
        }
        None => false,
    }
}

fn cache_name(url: &str) -> String {
    let stem: String = url
        .trim_end_matches('/')
        .rsplit(['/', '\\', ':'])
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let digest = Sha256::digest(url.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let stem = if stem.is_empty() { "repo".into() } else { stem };
    format!("{stem}-{hash}")
}

/// A cached git repository that follows one branch (or a pinned revision).
#[derive(Debug, Clone)]
pub struct GitSource {
    cache_dir: PathBuf,
    remote: RemoteLocation,
    branch: String,
    revision: Option<String>,
    credentials: GitCredentials,
}

/// Remote-tracking namespace the cache fetches into.
const TRACKING: &str = "refs/remotes/origin";

impl GitSource {
    /// Checks the URL and names; touches nothing on disk or the network.
    pub fn new(
        cache_dir: PathBuf,
        repo: &RepoConfig,
        credentials: GitCredentials,
    ) -> Result<Self, GitError> {
        let remote = RemoteLocation::parse(&repo.url)?;
        check_branch_name(&repo.branch)?;
        // A password written into the URL is the most specific credential.
        let credentials = match &remote.url_password {
            Some(password) => GitCredentials::with_token(password.clone()),
            None => credentials,
        };
        let revision = repo
            .revision
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        Ok(Self {
            cache_dir,
            remote,
            branch: repo.branch.clone(),
            revision,
            credentials,
        })
    }

    /// The URL as shown to people (password redacted).
    pub fn display_url(&self) -> &str {
        &self.remote.display
    }

    /// The cached repository's directory (also the checkout's worktree).
    pub fn repo_dir(&self) -> PathBuf {
        self.cache_dir.join(&self.remote.cache_name)
    }

    fn lock_path(&self) -> PathBuf {
        self.cache_dir
            .join(format!("{}.lock", self.remote.cache_name))
    }

    /// Fetches and checks out the branch head, or the pinned revision: a tag,
    /// then a branch, then a (possibly abbreviated) commit SHA, in that order;
    /// a SHA on another branch is found by fetching all branches once.
    pub fn sync(&self) -> Result<Checkout, GitError> {
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| GitError::Cache {
            path: self.cache_dir.clone(),
            detail: format!("cannot create the cache directory: {e}"),
        })?;
        let _lock = self.lock()?;
        let repo = self.open_or_init()?;
        let previous = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .map(|c| c.id());

        self.fetch(&repo, &self.refspecs())?;
        let target = self.resolve_target(&repo)?;

        let commit = repo.find_commit(target).map_err(|e| self.cache_err(&e))?;
        let mut checkout = CheckoutBuilder::new();
        checkout.force().remove_untracked(true).remove_ignored(true);
        repo.checkout_tree(commit.as_object(), Some(&mut checkout))
            .map_err(|e| self.cache_err(&e))?;
        repo.set_head_detached(target)
            .map_err(|e| self.cache_err(&e))?;
        tracing::debug!(
            url = %self.remote.display,
            branch = %self.branch,
            revision = %target,
            changed = previous != Some(target),
            "git source synced"
        );

        Ok(Checkout {
            path: self.repo_dir(),
            revision: target.to_string(),
            branch: self.branch.clone(),
            changed_from: previous.filter(|p| *p != target).map(|p| p.to_string()),
        })
    }

    /// Paths (files, relative to the repository root) that differ between
    /// two commits already in the cache (call [`Self::sync`] first). `from`
    /// may be the all-zero SHA GitHub sends for a new branch: then every
    /// file of `to` counts as changed. A rename lists both paths.
    pub fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<PathBuf>, GitError> {
        let repo = Repository::open(self.repo_dir()).map_err(|e| self.cache_err(&e))?;
        let old_tree = if from.chars().all(|c| c == '0') && !from.is_empty() {
            None
        } else {
            Some(self.tree_of(&repo, from)?)
        };
        let new_tree = self.tree_of(&repo, to)?;
        let diff = repo
            .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)
            .map_err(|e| self.cache_err(&e))?;
        let mut paths: Vec<PathBuf> = diff
            .deltas()
            .flat_map(|d| [d.old_file().path(), d.new_file().path()])
            .flatten()
            .map(Path::to_path_buf)
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    fn tree_of<'r>(&self, repo: &'r Repository, rev: &str) -> Result<git2::Tree<'r>, GitError> {
        repo.revparse_single(&format!("{rev}^{{commit}}"))
            .and_then(|o| o.peel_to_tree())
            .map_err(|_| GitError::RevisionNotFound {
                revision: rev.to_string(),
                url: self.remote.display.clone(),
            })
    }

    fn lock(&self) -> Result<File, GitError> {
        let path = self.lock_path();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| GitError::Lock {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| GitError::Lock { path, source })?;
        Ok(file)
    }

    fn open_or_init(&self) -> Result<Repository, GitError> {
        let dir = self.repo_dir();
        if dir.join(".git").exists() {
            match Repository::open(&dir) {
                Ok(repo) => return Ok(repo),
                // A damaged cache is rebuilt rather than reported: it holds
                // nothing that the remote does not.
                Err(e) => tracing::warn!(
                    cache = %dir.display(),
                    error = %self.credentials.redact(e.message()),
                    "git cache is unreadable; cloning again"
                ),
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| GitError::Cache {
                path: dir.clone(),
                detail: format!("cannot remove the damaged cache: {e}"),
            })?;
        }
        Repository::init(&dir).map_err(|e| self.cache_err(&e))
    }

    /// The configured branch, a pinned branch if the revision may name one,
    /// and all tags (a pinned revision may be a tag; tags are small).
    fn refspecs(&self) -> Vec<String> {
        let mut specs = vec![branch_refspec(&self.branch)];
        if let Some(rev) = &self.revision
            && rev != &self.branch
            && check_branch_name(rev).is_ok()
        {
            specs.push(branch_refspec(rev));
        }
        specs.push("+refs/tags/*:refs/tags/*".into());
        specs
    }

    fn fetch(&self, repo: &Repository, refspecs: &[String]) -> Result<(), GitError> {
        // libgit2 says "unsupported URL protocol" for a missing local path.
        if let Some(path) = &self.remote.local_path
            && !path.exists()
        {
            return Err(GitError::Unreachable {
                url: self.remote.display.clone(),
                detail: format!("no repository at {}", path.display()),
            });
        }
        let auth = AuthAttempt::default();
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(self.credentials.remote_callbacks(&auth))
            .download_tags(AutotagOption::None)
            // Prune drops tracking refs whose branch vanished upstream, so a
            // deleted branch reports "not found" instead of a stale commit.
            .prune(FetchPrune::On)
            .update_fetchhead(false);
        let mut remote = repo
            .remote_anonymous(&self.remote.fetch_url)
            .map_err(|e| self.remote_err(&e, &auth))?;
        remote
            .fetch(refspecs, Some(&mut options), None)
            .map_err(|e| self.remote_err(&e, &auth))
    }

    fn resolve_target(&self, repo: &Repository) -> Result<Oid, GitError> {
        let Some(rev) = &self.revision else {
            return tracking_commit(repo, &self.branch).ok_or_else(|| GitError::BranchNotFound {
                branch: self.branch.clone(),
                url: self.remote.display.clone(),
            });
        };
        if let Some(oid) = resolve_pinned(repo, rev) {
            return Ok(oid);
        }
        // A SHA on another branch: fetch every branch once and look again.
        if looks_like_sha(rev) {
            self.fetch(repo, &[format!("+refs/heads/*:{TRACKING}/*")])?;
            if let Some(oid) = resolve_pinned(repo, rev) {
                return Ok(oid);
            }
        }
        Err(GitError::RevisionNotFound {
            revision: rev.clone(),
            url: self.remote.display.clone(),
        })
    }

    fn remote_err(&self, err: &git2::Error, auth: &AuthAttempt) -> GitError {
        classify_remote_error(
            err,
            "fetch from",
            &self.remote.display,
            auth,
            &self.credentials,
        )
    }

    fn cache_err(&self, err: &git2::Error) -> GitError {
        GitError::Cache {
            path: self.repo_dir(),
            detail: self.credentials.redact(err.message()),
        }
    }
}

fn check_branch_name(name: &str) -> Result<(), GitError> {
    if git2::Reference::is_valid_name(&format!("refs/heads/{name}")) {
        Ok(())
    } else {
        Err(GitError::InvalidName {
            what: "branch",
            name: name.to_string(),
        })
    }
}

fn branch_refspec(branch: &str) -> String {
    format!("+refs/heads/{branch}:{TRACKING}/{branch}")
}

fn tracking_commit(repo: &Repository, branch: &str) -> Option<Oid> {
    repo.find_reference(&format!("{TRACKING}/{branch}"))
        .ok()?
        .peel_to_commit()
        .ok()
        .map(|c| c.id())
}

fn looks_like_sha(rev: &str) -> bool {
    (4..=64).contains(&rev.len()) && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// A pinned revision, tried as tag, then branch, then (abbreviated) SHA.
fn resolve_pinned(repo: &Repository, rev: &str) -> Option<Oid> {
    let as_ref = |name: String| {
        repo.find_reference(&name)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    };
    as_ref(format!("refs/tags/{rev}"))
        .or_else(|| as_ref(format!("{TRACKING}/{rev}")))
        .or_else(|| {
            if !looks_like_sha(rev) {
                return None;
            }
            repo.revparse_single(rev)
                .ok()?
                .peel_to_commit()
                .ok()
                .map(|c| c.id())
        })
}

#[cfg(test)]
mod tests;
