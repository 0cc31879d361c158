//! A stateful GitHub API double for end-to-end tests.
//!
//! An axum server on 127.0.0.1 that speaks the REST and GraphQL shapes relbot
//! uses (field names and required fields as GitHub sends them, so octocrab's
//! models deserialize them), keeps state per repository (pulls, comments,
//! labels, statuses, check runs, branch protection, auto-merge), records every
//! request, and injects faults (5xx, 422, primary and secondary rate limits,
//! "applied, then 502").
//!
//! Branch heads come from a map the test sets, or from a real bare git
//! repository ([`GitHubDouble::attach_git`]); with git attached, merges are
//! real commits on the base branch.
//!
//! ```ignore
//! let gh = GitHubDouble::start().await;
//! gh.add_repo("acme/cluster-config", "main");
//! gh.set_branch("acme/cluster-config", "relbot/django-api", &sha);
//! // point relbot at gh.url() with token GitHubDouble::TOKEN
//! ```
#![allow(dead_code)]

#[path = "github_double_graphql.rs"]
mod graphql_schema;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
    /// `Bearer`/`token` scheme present (the credential itself is not kept).
    pub authenticated: bool,
    pub status: u16,
    pub at: Instant,
}

/// What an injected fault answers.
#[derive(Debug, Clone)]
pub enum FaultAnswer {
    /// This status with a GitHub-shaped error body; the request is not applied.
    Status(u16, &'static str),
    /// 403 + `retry-after`, GitHub's secondary-rate-limit message.
    SecondaryRateLimit { retry_after_secs: u64 },
    /// 403 + `x-ratelimit-remaining: 0` + `x-ratelimit-reset` in the future.
    PrimaryRateLimit { reset_in_secs: u64 },
    /// The request *is* applied, then the answer is 502 (a lost response).
    AppliedThen502,
}

#[derive(Debug, Clone)]
struct Fault {
    method: Option<Method>,
    path_contains: Option<String>,
    remaining: u32,
    answer: FaultAnswer,
}

/// A pull request as the double holds it.
#[derive(Debug, Clone)]
pub struct PullState {
    pub number: u64,
    pub id: u64,
    pub node_id: String,
    pub state: String,
    pub merged: bool,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub merged_via: Option<String>,
    pub title: String,
    pub body: Option<String>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub labels: Vec<String>,
    pub user: String,
    pub auto_merge: Option<String>,
    pub mergeable_state_override: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub comments: Vec<String>,
}

/// A merge the double performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRecord {
    pub number: u64,
    pub method: String,
    /// `api` (PUT /merge) or `auto-merge`.
    pub via: String,
    pub sha: String,
}

#[derive(Debug, Clone, Default)]
struct CheckState {
    /// context → state, latest wins
    statuses: BTreeMap<String, String>,
    /// (name, app id) → (status, conclusion): two apps may report the same name.
    runs: BTreeMap<(String, u64), (String, Option<String>)>,
}

impl CheckState {
    /// Whether `check` passed as branch protection reads it: a check pinned
    /// to an app is satisfied only by that app's check run.
    fn passed(&self, check: &RequiredCheck) -> bool {
        let run_passed = |(s, c): &(String, Option<String>)| {
            s == "completed" && matches!(c.as_deref(), Some("success" | "neutral" | "skipped"))
        };
        match check.app_id {
            Some(app) => self
                .runs
                .get(&(check.context.clone(), app))
                .is_some_and(run_passed),
            None => {
                self.statuses
                    .get(&check.context)
                    .is_some_and(|s| s == "success")
                    || self
                        .runs
                        .iter()
                        .any(|((name, _), run)| name == &check.context && run_passed(run))
            }
        }
    }
}

/// A required check of a branch protection rule; `app_id: None` accepts any
/// source (GitHub's `app_id: null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredCheck {
    pub context: String,
    pub app_id: Option<u64>,
}

#[derive(Debug, Default)]
struct RepoState {
    id: u64,
    owner: String,
    name: String,
    default_branch: String,
    allow_auto_merge: bool,
    branches: HashMap<String, String>,
    git: Option<PathBuf>,
    required_checks: HashMap<String, Vec<RequiredCheck>>,
    /// Old `owner/name`s that redirect here (renames and transfers).
    former_names: Vec<String>,
    pulls: BTreeMap<u64, PullState>,
    checks: HashMap<String, CheckState>,
    merges: Vec<MergeRecord>,
    /// Commit statuses accepted, in order: (sha, the status as answered).
    posted_statuses: Vec<(String, Value)>,
}

#[derive(Debug)]
struct AppAuth {
    app_id: u64,
    public_key_pem: Vec<u8>,
    installation_id: u64,
}

#[derive(Debug, Default)]
struct DoubleState {
    repos: BTreeMap<String, RepoState>,
    tokens: HashSet<String>,
    app: Option<AppAuth>,
    faults: Vec<Fault>,
    log: Vec<RecordedRequest>,
    next_id: u64,
    bot_login: String,
    /// GitHub Enterprise Server's layout: REST only under `/api/v3`, GraphQL
    /// only at `/api/graphql` (github.com: REST at the root, `/graphql`).
    enterprise: bool,
}

type Shared = Arc<Mutex<DoubleState>>;

/// The running double. Dropping it stops the server.
pub struct GitHubDouble {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for GitHubDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// GitHub Actions' App id on github.com: the source of most check runs.
pub const ACTIONS_APP_ID: u64 = 15368;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl GitHubDouble {
    /// The token the double accepts from the start.
    pub const TOKEN: &'static str = "ghp_doubletoken0123456789";

    /// A double laid out like github.com (`https://api.github.com`).
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A double laid out like GitHub Enterprise Server: REST under
    /// `/api/v3`, GraphQL at `/api/graphql`, nothing else answers.
    pub async fn start_enterprise() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(enterprise: bool) -> Self {
        let state = Arc::new(Mutex::new(DoubleState {
            tokens: HashSet::from([Self::TOKEN.to_string()]),
            next_id: 1000,
            bot_login: "relbot[bot]".into(),
            enterprise,
            ..Default::default()
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            state,
            shutdown: Some(tx),
        }
    }

    /// The server's root URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL to configure as `github.apiUrl`: the root on the github.com
    /// layout, `…/api/v3` on the Enterprise layout.
    pub fn api_url(&self) -> String {
        if self.lock().enterprise {
            format!("{}/api/v3", self.url())
        } else {
            self.url()
        }
    }

    fn lock(&self) -> MutexGuard<'_, DoubleState> {
        self.state.lock().unwrap()
    }

    fn with_repo<T>(&self, full_name: &str, f: impl FnOnce(&mut RepoState) -> T) -> T {
        let mut st = self.lock();
        let repo = st
            .repos
            .get_mut(full_name)
            .unwrap_or_else(|| panic!("double has no repo {full_name}"));
        f(repo)
    }

    /// Adds a repository (auto-merge allowed, no branch protection).
    pub fn add_repo(&self, full_name: &str, default_branch: &str) {
        let (owner, name) = full_name.split_once('/').expect("owner/name");
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.repos.insert(
            full_name.to_string(),
            RepoState {
                id,
                owner: owner.into(),
                name: name.into(),
                default_branch: default_branch.into(),
                allow_auto_merge: true,
                ..Default::default()
            },
        );
    }

    pub fn accept_token(&self, token: &str) {
        self.lock().tokens.insert(token.to_string());
    }

    /// Accepts GitHub App JWTs signed by the key matching `public_key_pem`.
    pub fn set_app(&self, app_id: u64, public_key_pem: &[u8], installation_id: u64) {
        self.lock().app = Some(AppAuth {
            app_id,
            public_key_pem: public_key_pem.to_vec(),
            installation_id,
        });
    }

    /// The login PRs are attributed to.
    pub fn set_bot_login(&self, login: &str) {
        self.lock().bot_login = login.to_string();
    }

    /// Backs branch heads (and merges) by a real bare repository.
    pub fn attach_git(&self, full_name: &str, bare: impl Into<PathBuf>) {
        let bare = bare.into();
        self.with_repo(full_name, |r| r.git = Some(bare));
    }

    pub fn set_branch(&self, full_name: &str, branch: &str, sha: &str) {
        self.with_repo(full_name, |r| {
            r.branches.insert(branch.to_string(), sha.to_string());
        });
    }

    pub fn set_allow_auto_merge(&self, full_name: &str, allow: bool) {
        self.with_repo(full_name, |r| r.allow_auto_merge = allow);
    }

    /// Protects `branch` with these required check names (any source).
    pub fn set_required_checks(&self, full_name: &str, branch: &str, checks: &[&str]) {
        let checks: Vec<(&str, Option<u64>)> = checks.iter().map(|c| (*c, None)).collect();
        self.set_required_checks_from_apps(full_name, branch, &checks);
    }

    /// Protects `branch` with required checks, each optionally pinned to the
    /// GitHub App that must report it (`checks[].app_id`).
    pub fn set_required_checks_from_apps(
        &self,
        full_name: &str,
        branch: &str,
        checks: &[(&str, Option<u64>)],
    ) {
        self.with_repo(full_name, |r| {
            r.required_checks.insert(
                branch.to_string(),
                checks
                    .iter()
                    .map(|(context, app_id)| RequiredCheck {
                        context: context.to_string(),
                        app_id: *app_id,
                    })
                    .collect(),
            );
        });
    }

    /// Renames or transfers a repository: the old name answers GitHub's
    /// redirects (301 for GET, 307 for other methods) to
    /// `/repositories/{id}/…`, and PR head labels carry the new owner.
    pub fn rename_repo(&self, old: &str, new: &str) {
        let (owner, name) = new.split_once('/').expect("owner/name");
        let mut st = self.lock();
        let mut repo = st
            .repos
            .remove(old)
            .unwrap_or_else(|| panic!("double has no repo {old}"));
        repo.owner = owner.into();
        repo.name = name.into();
        repo.former_names.push(old.to_string());
        st.repos.insert(new.to_string(), repo);
    }

    /// Forces a PR's `mergeable_state` (e.g. `dirty`), `None` to compute it.
    pub fn set_mergeable_state(&self, full_name: &str, number: u64, state: Option<&str>) {
        self.with_repo(full_name, |r| {
            r.pulls
                .get_mut(&number)
                .expect("pull")
                .mergeable_state_override = state.map(str::to_string);
        });
    }

    /// A commit status (`success`, `pending`, `failure`, `error`); runs
    /// pending auto-merges that it unblocks.
    pub fn set_status(&self, full_name: &str, sha: &str, context: &str, state: &str) {
        let mut st = self.lock();
        let repo = st.repos.get_mut(full_name).expect("repo");
        repo.checks
            .entry(sha.to_string())
            .or_default()
            .statuses
            .insert(context.into(), state.into());
        run_auto_merges(repo);
    }

    /// A check run (`queued`/`in_progress`/`completed` + conclusion),
    /// reported by GitHub Actions.
    pub fn set_check_run(
        &self,
        full_name: &str,
        sha: &str,
        name: &str,
        status: &str,
        conclusion: Option<&str>,
    ) {
        self.set_check_run_from_app(full_name, sha, name, ACTIONS_APP_ID, status, conclusion);
    }

    /// A check run reported by the GitHub App `app_id`.
    pub fn set_check_run_from_app(
        &self,
        full_name: &str,
        sha: &str,
        name: &str,
        app_id: u64,
        status: &str,
        conclusion: Option<&str>,
    ) {
        let mut st = self.lock();
        let repo = st.repos.get_mut(full_name).expect("repo");
        repo.checks.entry(sha.to_string()).or_default().runs.insert(
            (name.into(), app_id),
            (status.into(), conclusion.map(str::to_string)),
        );
        run_auto_merges(repo);
    }

    /// A PR opened by someone else (the branch must be set).
    pub fn seed_pull(
        &self,
        full_name: &str,
        user: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> u64 {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let repo = st.repos.get_mut(full_name).expect("repo");
        let sha = branch_sha(repo, head).expect("seed_pull: set the head branch first");
        insert_pull(
            repo,
            id,
            user,
            head,
            &sha,
            base,
            title,
            Some(body.to_string()),
        )
    }

    /// Closes a PR the way a person in the web UI would.
    pub fn close_pull_as_human(&self, full_name: &str, number: u64) {
        self.with_repo(full_name, |r| {
            let p = r.pulls.get_mut(&number).expect("pull");
            p.state = "closed".into();
            p.closed_at = Some(now());
            p.auto_merge = None;
        });
    }

    /// The next `count` requests matching `method` (any when `None`) and a
    /// path containing `path_contains` (any when `None`) get `answer`.
    pub fn inject(
        &self,
        method: Option<Method>,
        path_contains: Option<&str>,
        count: u32,
        answer: FaultAnswer,
    ) {
        self.lock().faults.push(Fault {
            method,
            path_contains: path_contains.map(str::to_string),
            remaining: count,
            answer,
        });
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }

    /// Recorded requests as `METHOD /path` strings, for compact assertions.
    pub fn request_lines(&self) -> Vec<String> {
        self.lock()
            .log
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    pub fn pulls(&self, full_name: &str) -> Vec<PullState> {
        self.with_repo(full_name, |r| {
            sync_heads(r);
            r.pulls.values().cloned().collect()
        })
    }

    pub fn pull(&self, full_name: &str, number: u64) -> PullState {
        self.with_repo(full_name, |r| {
            sync_heads(r);
            r.pulls.get(&number).cloned().expect("pull")
        })
    }

    pub fn open_pulls(&self, full_name: &str) -> Vec<PullState> {
        self.pulls(full_name)
            .into_iter()
            .filter(|p| p.state == "open")
            .collect()
    }

    /// Commit statuses accepted for `full_name`, in order: (sha, status).
    pub fn commit_statuses(&self, full_name: &str) -> Vec<(String, Value)> {
        self.lock().repos[full_name].posted_statuses.clone()
    }

    pub fn merges(&self, full_name: &str) -> Vec<MergeRecord> {
        self.with_repo(full_name, |r| r.merges.clone())
    }

    /// The REST JSON for a pull, exactly as `GET /pulls/{n}` answers.
    pub fn pull_json(&self, full_name: &str, number: u64) -> Value {
        let base = self.url();
        self.with_repo(full_name, |r| {
            sync_heads(r);
            let p = r.pulls.get(&number).cloned().expect("pull");
            pull_json(&base, r, &p, true)
        })
    }
}

// ---------------------------------------------------------------- state ops

fn branch_sha(repo: &RepoState, branch: &str) -> Option<String> {
    if let Some(dir) = &repo.git {
        let git = git2::Repository::open_bare(dir).ok()?;
        let reference = git.find_reference(&format!("refs/heads/{branch}")).ok()?;
        return reference.target().map(|oid| oid.to_string());
    }
    repo.branches.get(branch).cloned()
}

/// Open PRs follow their head branch, as on GitHub.
fn sync_heads(repo: &mut RepoState) {
    let heads: Vec<(u64, Option<String>)> = repo
        .pulls
        .values()
        .filter(|p| p.state == "open")
        .map(|p| (p.number, branch_sha(repo, &p.head_ref)))
        .collect();
    for (number, sha) in heads {
        if let Some(sha) = sha {
            repo.pulls.get_mut(&number).unwrap().head_sha = sha;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn insert_pull(
    repo: &mut RepoState,
    id: u64,
    user: &str,
    head: &str,
    sha: &str,
    base: &str,
    title: &str,
    body: Option<String>,
) -> u64 {
    // Issues and PRs share numbers; start at 1.
    let number = repo.pulls.keys().max().copied().unwrap_or(0) + 1;
    let ts = now();
    repo.pulls.insert(
        number,
        PullState {
            number,
            id,
            node_id: format!("PR_kwDO{id:08}"),
            state: "open".into(),
            merged: false,
            merged_at: None,
            merge_commit_sha: None,
            merged_via: None,
            title: title.into(),
            body,
            head_ref: head.into(),
            head_sha: sha.into(),
            base_ref: base.into(),
            labels: vec![],
            user: user.into(),
            auto_merge: None,
            mergeable_state_override: None,
            created_at: ts.clone(),
            updated_at: ts,
            closed_at: None,
            comments: vec![],
        },
    );
    number
}

/// `clean` when every required check passed on the head, `blocked` when one
/// is missing, pending or failed, `unstable` when only optional ones failed.
fn mergeable_state(repo: &RepoState, p: &PullState) -> String {
    if let Some(s) = &p.mergeable_state_override {
        return s.clone();
    }
    let checks = repo.checks.get(&p.head_sha).cloned().unwrap_or_default();
    let required = repo
        .required_checks
        .get(&p.base_ref)
        .cloned()
        .unwrap_or_default();
    if !required.iter().all(|r| checks.passed(r)) {
        return "blocked".into();
    }
    let any_failed = checks
        .statuses
        .values()
        .any(|s| s == "failure" || s == "error")
        || checks.runs.values().any(|(s, c)| {
            s == "completed"
                && matches!(
                    c.as_deref(),
                    Some("failure" | "timed_out" | "cancelled" | "action_required")
                )
        });
    if any_failed {
        "unstable".into()
    } else {
        "clean".into()
    }
}

fn required_check_blocking(repo: &RepoState, p: &PullState) -> Option<String> {
    let checks = repo.checks.get(&p.head_sha).cloned().unwrap_or_default();
    repo.required_checks
        .get(&p.base_ref)
        .into_iter()
        .flatten()
        .find(|check| !checks.passed(check))
        .map(|check| check.context.clone())
}

fn run_auto_merges(repo: &mut RepoState) {
    sync_heads(repo);
    let ready: Vec<u64> = repo
        .pulls
        .values()
        .filter(|p| {
            p.state == "open" && p.auto_merge.is_some() && mergeable_state(repo, p) == "clean"
        })
        .map(|p| p.number)
        .collect();
    for number in ready {
        let method = repo.pulls[&number]
            .auto_merge
            .clone()
            .unwrap_or_else(|| "merge".into());
        let _ = perform_merge(repo, number, &method, "auto-merge");
    }
}

/// Merges `number` into its base; with git attached, as a real commit.
fn perform_merge(
    repo: &mut RepoState,
    number: u64,
    method: &str,
    via: &str,
) -> Result<String, String> {
    let p = repo.pulls.get(&number).cloned().expect("pull");
    let sha = match &repo.git {
        Some(dir) => git_merge(dir, &p, method, &repo.owner)?,
        None => {
            let sha = format!("{:040x}", 0xabc000 + number * 7 + repo.merges.len() as u64);
            repo.branches.insert(p.base_ref.clone(), sha.clone());
            sha
        }
    };
    let ts = now();
    let pull = repo.pulls.get_mut(&number).unwrap();
    pull.state = "closed".into();
    pull.merged = true;
    pull.merged_at = Some(ts.clone());
    pull.closed_at = Some(ts);
    pull.merge_commit_sha = Some(sha.clone());
    pull.merged_via = Some(via.into());
    pull.auto_merge = None;
    repo.merges.push(MergeRecord {
        number,
        method: method.into(),
        via: via.into(),
        sha: sha.clone(),
    });
    Ok(sha)
}

fn git_merge(dir: &PathBuf, p: &PullState, method: &str, owner: &str) -> Result<String, String> {
    let git = git2::Repository::open_bare(dir).map_err(|e| e.to_string())?;
    let base_ref = format!("refs/heads/{}", p.base_ref);
    let base = git
        .find_reference(&base_ref)
        .and_then(|r| r.peel_to_commit())
        .map_err(|e| e.to_string())?;
    let head = git
        .find_commit(git2::Oid::from_str(&p.head_sha).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut index = git
        .merge_commits(&base, &head, None)
        .map_err(|e| e.to_string())?;
    if index.has_conflicts() {
        return Err("Merge conflict".into());
    }
    let tree = git
        .find_tree(index.write_tree_to(&git).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let sig = git2::Signature::now("GitHub", "noreply@github.com").map_err(|e| e.to_string())?;
    let oid = match method {
        "merge" => {
            let msg = format!(
                "Merge pull request #{} from {owner}/{}\n\n{}",
                p.number, p.head_ref, p.title
            );
            git.commit(Some(&base_ref), &sig, &sig, &msg, &tree, &[&base, &head])
        }
        "rebase" => {
            let msg = head.message().unwrap_or("").to_string();
            git.commit(Some(&base_ref), &head.author(), &sig, &msg, &tree, &[&base])
        }
        _ => {
            let msg = format!("{} (#{})", p.title, p.number);
            git.commit(Some(&base_ref), &head.author(), &sig, &msg, &tree, &[&base])
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(oid.to_string())
}

// ---------------------------------------------------------------- JSON shapes

fn user_json(base: &str, login: &str, id: u64) -> Value {
    let u = format!("{base}/users/{login}");
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    json!({
        "login": login, "id": id, "node_id": format!("U_kgDO{id:06}"),
        "avatar_url": format!("{base}/avatars/u/{id}"), "gravatar_id": "",
        "url": u, "html_url": format!("{base}/{login}"),
        "followers_url": format!("{u}/followers"), "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"), "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"), "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"), "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"), "type": kind, "site_admin": false
    })
}

fn repo_json(base: &str, r: &RepoState) -> Value {
    let full = format!("{}/{}", r.owner, r.name);
    let url = format!("{base}/repos/{full}");
    json!({
        "id": r.id, "node_id": format!("R_kgDO{:06}", r.id), "name": r.name, "full_name": full,
        "owner": user_json(base, &r.owner, r.id + 1), "private": true,
        "html_url": format!("{base}/{full}"), "description": null, "fork": false, "url": url,
        "default_branch": r.default_branch, "allow_auto_merge": r.allow_auto_merge,
        "allow_squash_merge": true, "allow_merge_commit": true, "allow_rebase_merge": true,
        "delete_branch_on_merge": false, "archived": false, "disabled": false, "visibility": "private"
    })
}

fn label_json(base: &str, r: &RepoState, name: &str) -> Value {
    let id = name
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
        % 1_000_000_000;
    json!({
        "id": id, "node_id": format!("LA_kwDO{id}"), "url": format!("{base}/repos/{}/{}/labels/{name}", r.owner, r.name),
        "name": name, "description": null, "color": "ededed", "default": false
    })
}

fn ref_json(base: &str, r: &RepoState, ref_name: &str, sha: &str) -> Value {
    json!({
        "label": format!("{}:{ref_name}", r.owner), "ref": ref_name, "sha": sha,
        "user": user_json(base, &r.owner, r.id + 1), "repo": repo_json(base, r)
    })
}

fn pull_json(base: &str, r: &RepoState, p: &PullState, full: bool) -> Value {
    let api = format!("{base}/repos/{}/{}", r.owner, r.name);
    let html = format!("{base}/{}/{}/pull/{}", r.owner, r.name, p.number);
    let base_sha = branch_sha(r, &p.base_ref).unwrap_or_else(|| "0".repeat(40));
    let mut v = json!({
        "url": format!("{api}/pulls/{}", p.number), "id": p.id, "node_id": p.node_id,
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{}", p.number), "number": p.number, "state": p.state,
        "locked": false, "title": p.title, "user": user_json(base, &p.user, 42), "body": p.body,
        "labels": p.labels.iter().map(|l| label_json(base, r, l)).collect::<Vec<_>>(),
        "milestone": null, "active_lock_reason": null,
        "created_at": p.created_at, "updated_at": p.updated_at, "closed_at": p.closed_at, "merged_at": p.merged_at,
        "merge_commit_sha": p.merge_commit_sha, "assignee": null, "assignees": [], "requested_reviewers": [],
        "requested_teams": [], "draft": false,
        "commits_url": format!("{api}/pulls/{}/commits", p.number),
        "review_comments_url": format!("{api}/pulls/{}/comments", p.number),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{}/comments", p.number),
        "statuses_url": format!("{api}/statuses/{}", p.head_sha),
        "head": ref_json(base, r, &p.head_ref, &p.head_sha),
        "base": ref_json(base, r, &p.base_ref, &base_sha),
        "author_association": "CONTRIBUTOR",
        "auto_merge": p.auto_merge.as_ref().map(|m| json!({
            "enabled_by": user_json(base, &p.user, 42), "merge_method": m, "commit_title": null, "commit_message": null
        })),
    });
    if full {
        let extra = json!({
            "merged": p.merged, "mergeable": if p.state == "open" { Value::from(mergeable_state(r, p) != "dirty") } else { Value::Null },
            "rebaseable": true, "mergeable_state": if p.state == "open" { mergeable_state(r, p) } else { "unknown".into() },
            "merged_by": if p.merged { user_json(base, "web-flow", 19864447) } else { Value::Null },
            "comments": p.comments.len(), "review_comments": 0, "maintainer_can_modify": false,
            "commits": 1, "additions": 1, "deletions": 1, "changed_files": 1
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
    }
    v
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}` as GitHub documents it:
/// `state` one of error, failure, pending, success (required); `target_url`,
/// `description` (GitHub cuts nothing: over 140 characters is a 422) and
/// `context` optional strings; a full 40-hex commit id that exists. 201
/// with the status. Each accepted status is kept in order for tests.
fn create_status(
    base: &str,
    repo: &mut RepoState,
    sha: &str,
    body: Option<&Value>,
    bot: &str,
    id: u64,
) -> Response {
    let Some(body) = body.and_then(Value::as_object) else {
        return answer(400, error_body("Problems parsing JSON"));
    };
    let invalid = |field: &str, code: &str| {
        answer(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [{"resource": "Status", "field": field, "code": code}],
                "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
                "status": "422",
            }),
        )
    };
    let state = match body.get("state").and_then(Value::as_str) {
        Some(s @ ("error" | "failure" | "pending" | "success")) => s.to_string(),
        Some(_) => return invalid("state", "invalid"),
        None => return invalid("state", "missing_field"),
    };
    for field in ["target_url", "description", "context"] {
        if body
            .get(field)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return invalid(field, "invalid");
        }
    }
    if let Some(known) = body
        .keys()
        .find(|k| !["state", "target_url", "description", "context"].contains(&k.as_str()))
    {
        return invalid(known, "unexpected_field");
    }
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
    if text("description").is_some_and(|d| d.chars().count() > 140) {
        return invalid("description", "custom");
    }
    if text("target_url").is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://")))
    {
        return invalid("target_url", "invalid");
    }
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return answer(422, error_body(&format!("No commit found for SHA: {sha}")));
    }
    let context = text("context").unwrap_or_else(|| "default".into());
    repo.checks
        .entry(sha.to_string())
        .or_default()
        .statuses
        .insert(context.clone(), state.clone());
    let status = json!({
        "url": format!("{base}/repos/{}/{}/statuses/{sha}", repo.owner, repo.name),
        "id": id, "node_id": format!("SC_{id}"),
        "state": state, "description": text("description"), "target_url": text("target_url"),
        "context": context, "creator": {"login": bot},
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
    });
    repo.posted_statuses.push((sha.to_string(), status.clone()));
    run_auto_merges(repo);
    answer(201, status)
}

fn error_body(message: &str) -> Value {
    json!({ "message": message, "documentation_url": "https://docs.github.com/rest", "status": "" })
}

fn answer(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

// ---------------------------------------------------------------- routing

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().map(str::to_string);
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base = format!("http://{host}");
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("token "))
        })
        .map(str::to_string);

    let mut st = state.lock().unwrap();
    let fault = take_fault(&mut st, &method, &path);
    let response = match fault {
        Some(FaultAnswer::Status(status, message)) => answer(status, error_body(message)),
        Some(FaultAnswer::SecondaryRateLimit { retry_after_secs }) => {
            let mut r = answer(
                403,
                error_body(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
                ),
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after_secs));
            r
        }
        Some(FaultAnswer::PrimaryRateLimit { reset_in_secs }) => {
            let reset = chrono::Utc::now().timestamp() as u64 + reset_in_secs;
            let mut r = answer(
                403,
                error_body("API rate limit exceeded for installation ID 1."),
            );
            r.headers_mut()
                .insert("x-ratelimit-remaining", HeaderValue::from(0));
            r.headers_mut()
                .insert("x-ratelimit-limit", HeaderValue::from(5000));
            r.headers_mut()
                .insert("x-ratelimit-reset", HeaderValue::from(reset));
            r
        }
        Some(FaultAnswer::AppliedThen502) => {
            let _ = route(
                &mut st,
                &base,
                &method,
                &path,
                query.as_deref(),
                body_json.as_ref(),
                bearer.as_deref(),
            );
            answer(502, json!({ "message": "Server Error" }))
        }
        None => route(
            &mut st,
            &base,
            &method,
            &path,
            query.as_deref(),
            body_json.as_ref(),
            bearer.as_deref(),
        ),
    };
    st.log.push(RecordedRequest {
        method: method.to_string(),
        path,
        query,
        body: body_json,
        authenticated: bearer.is_some(),
        status: response.status().as_u16(),
        at: Instant::now(),
    });
    response
}

fn take_fault(st: &mut DoubleState, method: &Method, path: &str) -> Option<FaultAnswer> {
    let fault = st.faults.iter_mut().find(|f| {
        f.remaining > 0
            && f.method.as_ref().is_none_or(|m| m == method)
            && f.path_contains
                .as_ref()
                .is_none_or(|p| path.contains(p.as_str()))
    })?;
    fault.remaining -= 1;
    let answer = fault.answer.clone();
    st.faults.retain(|f| f.remaining > 0);
    Some(answer)
}

fn route(
    st: &mut DoubleState,
    base: &str,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Response {
    // Each layout answers only its own paths, so a client that mixes them
    // (e.g. minting an App token at GHES's `/api/app/…`) gets a 404.
    let original_path = path;
    let (prefix, path) = if st.enterprise {
        match path.strip_prefix("/api/v3") {
            Some(rest) if rest.starts_with('/') => ("/api/v3", rest),
            _ if path == "/api/graphql" => ("", "/graphql"),
            _ => return answer(404, error_body("Not Found")),
        }
    } else {
        ("", path)
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["app", "installations", id, "access_tokens"] = segments.as_slice()
        && method == Method::POST
    {
        return installation_token(st, id, bearer);
    }
    if !bearer.is_some_and(|t| st.tokens.contains(t)) {
        return answer(401, error_body("Bad credentials"));
    }
    if segments.as_slice() == ["graphql"] && method == Method::POST {
        return graphql(st, base, body);
    }
    // `/repos/{owner}/{name}/…`, or `/repositories/{id}/…` where GitHub's
    // redirects for renamed and transferred repositories point.
    let (full, rest) = match segments.as_slice() {
        ["repos", owner, name, rest @ ..] => {
            let asked = format!("{owner}/{name}");
            // Owner and name are not case sensitive on GitHub.
            let current = st
                .repos
                .keys()
                .find(|k| k.eq_ignore_ascii_case(&asked))
                .cloned();
            if current.is_none()
                && let Some(repo) = st.repos.values().find(|r| {
                    r.former_names
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(&asked))
                })
            {
                return moved(base, prefix, repo.id, rest, query, method);
            }
            match current {
                Some(full) => (full, rest),
                None => return answer(404, error_body("Not Found")),
            }
        }
        ["repositories", id, rest @ ..] => {
            match st
                .repos
                .iter()
                .find(|(_, r)| id.parse::<u64>().ok() == Some(r.id))
            {
                Some((full, _)) => (full.clone(), rest),
                None => return answer(404, error_body("Not Found")),
            }
        }
        _ => return answer(404, error_body("Not Found")),
    };
    let bot = st.bot_login.clone();
    st.next_id += 1;
    let fresh_id = st.next_id;
    let Some(repo) = st.repos.get_mut(&full) else {
        return answer(404, error_body("Not Found"));
    };
    sync_heads(repo);
    let q = parse_query(query);
    match (method.clone(), rest) {
        (Method::GET, []) => answer(200, repo_json(base, repo)),
        (Method::GET, ["pulls"]) => list_pulls(base, repo, &q, original_path),
        (Method::POST, ["pulls"]) => create_pull(base, repo, body, &bot, fresh_id),
        (Method::GET, ["pulls", n]) => with_pull(repo, n, |repo, p| {
            answer(200, pull_json(base, repo, p, true))
        }),
        (Method::PATCH, ["pulls", n]) => update_pull(base, repo, n, body),
        (Method::PUT, ["pulls", n, "merge"]) => merge_pull(repo, n, body),
        (Method::POST, ["issues", n, "comments"]) => {
            add_comment(base, repo, n, body, &bot, fresh_id)
        }
        (Method::GET, ["issues", n, "comments"]) => with_pull(repo, n, |_, p| {
            answer(
                200,
                Value::from(
                    p.comments
                        .iter()
                        .map(|c| json!({ "body": c }))
                        .collect::<Vec<_>>(),
                ),
            )
        }),
        (Method::POST, ["issues", n, "labels"]) => add_labels(base, repo, n, body),
        (Method::GET, ["commits", sha, "status"]) => {
            combined_status(base, repo, sha, &q, original_path)
        }
        (Method::POST, ["statuses", sha]) => create_status(base, repo, sha, body, &bot, fresh_id),
        (Method::GET, ["commits", sha, "check-runs"]) => {
            check_runs(base, repo, sha, &q, original_path)
        }
        (
            Method::GET,
            [
                "branches",
                branch @ ..,
                "protection",
                "required_status_checks",
            ],
        ) => {
            let branch = percent_decode(&branch.join("/"));
            match repo.required_checks.get(&branch) {
                Some(checks) => answer(
                    200,
                    json!({
                        "url": format!("{base}{original_path}"), "strict": false,
                        "contexts": checks.iter().map(|c| c.context.clone()).collect::<Vec<_>>(),
                        "checks": checks.iter().map(|c| json!({ "context": c.context, "app_id": c.app_id })).collect::<Vec<_>>(),
                        "contexts_url": format!("{base}{original_path}/contexts")
                    }),
                ),
                None => answer(404, error_body("Branch not protected")),
            }
        }
        _ => answer(404, error_body("Not Found")),
    }
}

/// GitHub's answer for a repository's old name: 301 for GET and HEAD, 307
/// for other methods (so clients repeat them unchanged), pointing at the
/// repository's id.
fn moved(
    base: &str,
    prefix: &str,
    id: u64,
    rest: &[&str],
    query: Option<&str>,
    method: &Method,
) -> Response {
    let mut location = format!("{base}{prefix}/repositories/{id}");
    for segment in rest {
        location.push('/');
        location.push_str(segment);
    }
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    let status = if method == Method::GET || method == Method::HEAD {
        301
    } else {
        307
    };
    let message = if status == 301 {
        "Moved Permanently"
    } else {
        "Temporary Redirect"
    };
    let mut response = answer(
        status,
        json!({ "message": message, "url": location, "documentation_url": "https://docs.github.com/v3/#http-redirects" }),
    );
    response
        .headers_mut()
        .insert("location", HeaderValue::from_str(&location).unwrap());
    response
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_pull(
    repo: &mut RepoState,
    n: &str,
    f: impl FnOnce(&RepoState, &PullState) -> Response,
) -> Response {
    match n
        .parse::<u64>()
        .ok()
        .and_then(|n| repo.pulls.get(&n).cloned())
    {
        Some(p) => f(repo, &p),
        None => answer(404, error_body("Not Found")),
    }
}

/// 422 for a query parameter outside its documented values.
fn invalid_parameter(name: &str, value: &str, expected: &str) -> Response {
    answer(
        422,
        json!({ "message": "Validation Failed", "errors": [{ "resource": "Search", "field": name, "code": "invalid", "message": format!("{name} {value:?} is not valid: expected {expected}") }], "documentation_url": "https://docs.github.com/rest/pulls/pulls#list-pull-requests" }),
    )
}

fn list_pulls(base: &str, repo: &RepoState, q: &HashMap<String, String>, path: &str) -> Response {
    let state = q.get("state").map(String::as_str).unwrap_or("open");
    if !["open", "closed", "all"].contains(&state) {
        return invalid_parameter("state", state, "open, closed or all");
    }
    for (key, allowed) in [
        (
            "sort",
            &["created", "updated", "popularity", "long-running"][..],
        ),
        ("direction", &["asc", "desc"][..]),
    ] {
        if let Some(v) = q.get(key).filter(|v| !allowed.contains(&v.as_str())) {
            return invalid_parameter(key, v, &allowed.join(", "));
        }
    }
    // The description: `user:ref-name` or `organization:ref-name`. A head in
    // another owner's namespace is a fork's branch: none exist here.
    let head = match q.get("head") {
        None => None,
        Some(h) => match h.split_once(':') {
            Some((owner, branch)) if !owner.is_empty() && !branch.is_empty() => {
                Some((owner.eq_ignore_ascii_case(&repo.owner), branch.to_string()))
            }
            _ => return invalid_parameter("head", h, "user:ref-name"),
        },
    };
    let mut pulls: Vec<&PullState> = repo
        .pulls
        .values()
        .filter(|p| state == "all" || p.state == state)
        .filter(|p| {
            head.as_ref()
                .is_none_or(|(same_owner, h)| *same_owner && &p.head_ref == h)
        })
        .filter(|p| q.get("base").is_none_or(|b| &p.base_ref == b))
        .collect();
    if q.get("direction").map(String::as_str) != Some("asc") {
        pulls.reverse();
    }
    let page = match Page::of(pulls.len(), q, base, path) {
        Ok(page) => page,
        Err(response) => return *response,
    };
    let items: Vec<Value> = pulls[page.range.clone()]
        .iter()
        .map(|p| pull_json(base, repo, p, false))
        .collect();
    page.answer(Value::from(items))
}

fn create_pull(
    base: &str,
    repo: &mut RepoState,
    body: Option<&Value>,
    bot: &str,
    id: u64,
) -> Response {
    let field = |k: &str| {
        body.and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let invalid = |field: &str, code: &str| {
        answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "field": field, "code": code }], "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request" }),
        )
    };
    // The description requires `head` and `base`; `title` is "required
    // unless `issue` is specified"; everything else is optional.
    for key in ["title", "head", "base", "body"] {
        if body
            .and_then(|b| b.get(key))
            .is_some_and(|v| !(v.is_string() || key == "body" && v.is_null()))
        {
            return invalid(key, "invalid");
        }
    }
    let (Some(head), Some(base_ref)) = (field("head"), field("base")) else {
        let missing = if field("head").is_none() {
            "head"
        } else {
            "base"
        };
        return invalid(missing, "missing_field");
    };
    let title = match (field("title"), body.and_then(|b| b.get("issue"))) {
        (Some(title), _) => title,
        // Converting an issue: the double holds pull requests only.
        (None, Some(_)) => return invalid("issue", "invalid"),
        (None, None) => return invalid("title", "missing_field"),
    };
    if let Some(response) = body_too_long(field("body").as_deref()) {
        return response;
    }
    // `owner:branch` names a branch in that owner's fork; only the
    // repository's own owner has branches here.
    let head_branch = match head.split_once(':') {
        Some((owner, branch)) if owner.eq_ignore_ascii_case(&repo.owner) => branch.to_string(),
        Some(_) => return invalid("head", "invalid"),
        None => head.clone(),
    };
    let Some(sha) = branch_sha(repo, &head_branch) else {
        return answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "field": "head", "code": "invalid" }] }),
        );
    };
    if branch_sha(repo, &base_ref).is_none() && base_ref != repo.default_branch {
        return answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "field": "base", "code": "invalid" }] }),
        );
    }
    if repo
        .pulls
        .values()
        .any(|p| p.state == "open" && p.head_ref == head_branch && p.base_ref == base_ref)
    {
        let message = format!(
            "A pull request already exists for {}:{head_branch}.",
            repo.owner
        );
        return answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": message }], "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request" }),
        );
    }
    let number = insert_pull(
        repo,
        id,
        bot,
        &head_branch,
        &sha,
        &base_ref,
        &title,
        field("body"),
    );
    let p = repo.pulls[&number].clone();
    answer(201, pull_json(base, repo, &p, true))
}

/// GitHub's limit on a pull request body, and its answer past it.
fn body_too_long(body: Option<&str>) -> Option<Response> {
    const MAX_BODY_CHARS: usize = 65_536;
    body.filter(|b| b.chars().count() > MAX_BODY_CHARS).map(|_| {
        answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "Issue", "code": "custom", "field": "body", "message": "body is too long (maximum is 65536 characters)" }] }),
        )
    })
}

fn update_pull(base: &str, repo: &mut RepoState, n: &str, body: Option<&Value>) -> Response {
    let Some(number) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
        return answer(404, error_body("Not Found"));
    };
    if let Some(response) = body_too_long(body.and_then(|b| b.get("body")).and_then(Value::as_str))
    {
        return response;
    }
    let field = |k: &str| {
        body.and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // `state` is the enum `open` | `closed` in the description; anything
    // else (`merged`, a boolean, …) is refused.
    if let Some(state) = body.and_then(|b| b.get("state"))
        && !state.as_str().is_some_and(|s| s == "open" || s == "closed")
    {
        return answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "field": "state", "code": "invalid", "value": state }], "documentation_url": "https://docs.github.com/rest/pulls/pulls#update-a-pull-request" }),
        );
    }
    if let Some(state) = field("state") {
        let p = &repo.pulls[&number];
        if state == "open" && p.merged {
            return answer(
                422,
                json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": "state cannot be changed. The pull request cannot be reopened." }] }),
            );
        }
    }
    let p = repo.pulls.get_mut(&number).unwrap();
    if let Some(title) = field("title") {
        p.title = title;
    }
    if let Some(b) = body.and_then(|b| b.get("body")) {
        p.body = b.as_str().map(str::to_string);
    }
    if let Some(base_ref) = field("base") {
        p.base_ref = base_ref;
    }
    if let Some(state) = field("state") {
        if state == "closed" && p.state == "open" {
            p.closed_at = Some(now());
            p.auto_merge = None;
        }
        if state == "open" {
            p.closed_at = None;
        }
        p.state = state;
    }
    p.updated_at = now();
    let p = p.clone();
    answer(200, pull_json(base, repo, &p, true))
}

fn merge_pull(repo: &mut RepoState, n: &str, body: Option<&Value>) -> Response {
    let Some(p) = n
        .parse::<u64>()
        .ok()
        .and_then(|n| repo.pulls.get(&n).cloned())
    else {
        return answer(404, error_body("Not Found"));
    };
    let method = body
        .and_then(|b| b.get("merge_method"))
        .and_then(Value::as_str)
        .unwrap_or("merge")
        .to_string();
    if !["merge", "squash", "rebase"].contains(&method.as_str()) {
        return answer(422, error_body("Invalid merge_method"));
    }
    if p.state != "open" {
        return answer(405, error_body("Pull Request is not mergeable"));
    }
    if let Some(sha) = body.and_then(|b| b.get("sha")).and_then(Value::as_str)
        && sha != p.head_sha
    {
        return answer(
            409,
            error_body("Head branch was modified. Review and try the merge again."),
        );
    }
    if let Some(check) = required_check_blocking(repo, &p) {
        return answer(
            405,
            error_body(&format!("Required status check \"{check}\" is expected.")),
        );
    }
    if mergeable_state(repo, &p) == "dirty" {
        return answer(405, error_body("Pull Request is not mergeable"));
    }
    match perform_merge(repo, p.number, &method, "api") {
        Ok(sha) => answer(
            200,
            json!({ "sha": sha, "merged": true, "message": "Pull Request successfully merged" }),
        ),
        Err(e) => answer(405, error_body(&e)),
    }
}

fn add_comment(
    base: &str,
    repo: &mut RepoState,
    n: &str,
    body: Option<&Value>,
    bot: &str,
    id: u64,
) -> Response {
    let Some(number) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
        return answer(404, error_body("Not Found"));
    };
    let Some(text) = body.and_then(|b| b.get("body")).and_then(Value::as_str) else {
        return answer(
            422,
            json!({ "message": "Validation Failed", "errors": [{ "resource": "IssueComment", "field": "body", "code": "missing_field" }] }),
        );
    };
    repo.pulls
        .get_mut(&number)
        .unwrap()
        .comments
        .push(text.to_string());
    let api = format!("{base}/repos/{}/{}", repo.owner, repo.name);
    let ts = now();
    answer(
        201,
        json!({
            "id": id, "node_id": format!("IC_kwDO{id:08}"), "url": format!("{api}/issues/comments/{id}"),
            "html_url": format!("{base}/{}/{}/pull/{number}#issuecomment-{id}", repo.owner, repo.name),
            "issue_url": format!("{api}/issues/{number}"), "body": text, "user": user_json(base, bot, 42),
            "created_at": ts, "updated_at": ts, "author_association": "CONTRIBUTOR"
        }),
    )
}

fn add_labels(base: &str, repo: &mut RepoState, n: &str, body: Option<&Value>) -> Response {
    let Some(number) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
        return answer(404, error_body("Not Found"));
    };
    // GitHub takes `{"labels": [..]}` or a bare array, with at least one
    // item (`minItems: 1`), each a name or `{"name": ..}`.
    let items = body
        .and_then(|b| b.get("labels").or(Some(b)))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = items
        .iter()
        .filter_map(|v| v.as_str().or_else(|| v.get("name").and_then(Value::as_str)))
        .map(str::to_string)
        .collect();
    if names.is_empty() || names.len() != items.len() {
        return answer(
            422,
            json!({ "message": "Invalid request.\n\nFor 'properties/labels', [] should contain at least 1 item(s).", "documentation_url": "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue", "status": "422" }),
        );
    }
    let p = repo.pulls.get_mut(&number).unwrap();
    for name in names {
        if !p.labels.contains(&name) {
            p.labels.push(name);
        }
    }
    let labels = p.labels.clone();
    answer(
        200,
        Value::from(
            labels
                .iter()
                .map(|l| label_json(base, repo, l))
                .collect::<Vec<_>>(),
        ),
    )
}

fn combined_status(
    base: &str,
    repo: &RepoState,
    sha: &str,
    q: &HashMap<String, String>,
    path: &str,
) -> Response {
    let checks = repo.checks.get(sha).cloned().unwrap_or_default();
    // The combined state covers every status, whatever the page.
    let states: Vec<&String> = checks.statuses.values().collect();
    let state = if states.iter().any(|s| *s == "failure" || *s == "error") {
        "failure"
    } else if states.is_empty() || states.iter().any(|s| *s == "pending") {
        "pending"
    } else {
        "success"
    };
    let api = format!("{base}/repos/{}/{}", repo.owner, repo.name);
    let all: Vec<(&String, &String)> = checks.statuses.iter().collect();
    let page = match Page::of(all.len(), q, base, path) {
        Ok(page) => page,
        Err(response) => return *response,
    };
    let statuses: Vec<Value> = all[page.range.clone()]
        .iter()
        .enumerate()
        .map(|(i, (context, state))| {
            let id = page.range.start + i + 1;
            json!({
                "url": format!("{api}/statuses/{sha}"), "avatar_url": null, "id": id, "node_id": format!("SC_{id}"),
                "state": state, "description": null, "target_url": null, "context": context,
                "created_at": now(), "updated_at": now()
            })
        })
        .collect();
    page.answer(json!({
        "state": state, "statuses": statuses, "sha": sha, "total_count": all.len(),
        "repository": repo_json(base, repo), "commit_url": format!("{api}/commits/{sha}"), "url": format!("{api}/commits/{sha}/status")
    }))
}

fn app_json(base: &str, app_id: u64) -> Value {
    let (slug, name) = if app_id == ACTIONS_APP_ID {
        ("github-actions".to_string(), "GitHub Actions".to_string())
    } else {
        (format!("app-{app_id}"), format!("App {app_id}"))
    };
    json!({
        "id": app_id, "slug": slug, "node_id": format!("MDM6QXBw{app_id}"), "client_id": format!("Iv1.{app_id:016}"),
        "owner": user_json(base, "github", 9919), "name": name, "description": "",
        "external_url": format!("{base}/apps/{slug}"), "html_url": format!("{base}/apps/{slug}"),
        "created_at": "2018-07-30T09:30:17Z", "updated_at": "2024-04-10T20:33:16Z",
        "permissions": { "checks": "write", "metadata": "read" }, "events": ["check_run"]
    })
}

/// A check run as stored: ((name, app id), (status, conclusion)).
type RunEntry<'a> = (&'a (String, u64), &'a (String, Option<String>));

fn check_runs(
    base: &str,
    repo: &RepoState,
    sha: &str,
    q: &HashMap<String, String>,
    path: &str,
) -> Response {
    let checks = repo.checks.get(sha).cloned().unwrap_or_default();
    let api = format!("{base}/repos/{}/{}", repo.owner, repo.name);
    // The filters GitHub documents for this endpoint.
    let all: Vec<RunEntry<'_>> = checks
        .runs
        .iter()
        .filter(|((name, _), _)| q.get("check_name").is_none_or(|n| n == name))
        .filter(|((_, app), _)| q.get("app_id").is_none_or(|a| a == &app.to_string()))
        .filter(|(_, (status, _))| q.get("status").is_none_or(|s| s == status))
        .collect();
    let page = match Page::of(all.len(), q, base, path) {
        Ok(page) => page,
        Err(response) => return *response,
    };
    let runs: Vec<Value> = all[page.range.clone()]
        .iter()
        .enumerate()
        .map(|(i, ((name, app_id), (status, conclusion)))| {
            let id = page.range.start + i + 1;
            json!({
                "id": id, "head_sha": sha, "node_id": format!("CR_{id}"), "external_id": "",
                "url": format!("{api}/check-runs/{id}"), "html_url": format!("{base}/runs/{id}"), "details_url": null,
                "status": status, "conclusion": conclusion, "started_at": now(),
                "completed_at": if status == "completed" { Value::from(now()) } else { Value::Null },
                "output": { "title": null, "summary": null, "text": null, "annotations_count": 0, "annotations_url": format!("{api}/check-runs/{id}/annotations") },
                "name": name, "check_suite": { "id": 7000 + app_id }, "app": app_json(base, *app_id), "pull_requests": []
            })
        })
        .collect();
    page.answer(json!({ "total_count": all.len(), "check_runs": runs }))
}

/// One page of a list, as GitHub cuts it: `per_page` (default 30, at most
/// 100) and `page` (from 1), with a `Link` header naming the first, previous,
/// next and last pages that exist.
struct Page {
    range: std::ops::Range<usize>,
    link: Option<String>,
}

impl Page {
    fn of(
        total: usize,
        q: &HashMap<String, String>,
        base: &str,
        path: &str,
    ) -> Result<Self, Box<Response>> {
        let number = |key: &str, default: usize| -> Result<usize, Box<Response>> {
            match q.get(key) {
                None => Ok(default),
                Some(v) => v.parse::<usize>().map_err(|_| {
                    Box::new(answer(
                        422,
                        json!({ "message": format!("Invalid value for parameter '{key}': {v:?} is not an integer"), "documentation_url": "https://docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api" }),
                    ))
                }),
            }
        };
        let per_page = number("per_page", 30)?.clamp(1, 100);
        let page = number("page", 1)?.max(1);
        let last = total.div_ceil(per_page).max(1);
        let start = ((page - 1) * per_page).min(total);
        let range = start..(start + per_page).min(total);
        let mut others: Vec<String> = q
            .iter()
            .filter(|(k, _)| *k != "page")
            .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
            .collect();
        others.sort();
        let link = |p: usize, rel: &str| {
            format!(
                "<{base}{path}?{}&page={p}>; rel=\"{rel}\"",
                others.join("&")
            )
        };
        let mut rels = Vec::new();
        if page > 1 {
            rels.push(link(page - 1, "prev"));
        }
        if page < last {
            rels.push(link(page + 1, "next"));
            rels.push(link(last, "last"));
        }
        if page > 1 {
            rels.push(link(1, "first"));
        }
        Ok(Self {
            range,
            link: (!rels.is_empty()).then(|| rels.join(", ")),
        })
    }

    fn answer(&self, body: Value) -> Response {
        let mut response = answer(200, body);
        if let Some(link) = &self.link {
            response
                .headers_mut()
                .insert("link", HeaderValue::from_str(link).unwrap());
        }
        response
    }
}

fn graphql_error(kind: &str, message: &str) -> Response {
    answer(
        200,
        json!({
            "data": { "enablePullRequestAutoMerge": null },
            "errors": [{ "type": kind, "path": ["enablePullRequestAutoMerge"], "locations": [{ "line": 2, "column": 3 }], "message": message }]
        }),
    )
}

/// `POST /graphql`: the document is checked against the schema first
/// ([`graphql_schema::validate`]), then `enablePullRequestAutoMerge` runs
/// with GitHub's refusals, and the answer carries what the selection asked.
fn graphql(st: &mut DoubleState, base: &str, body: Option<&Value>) -> Response {
    let Some(query) = body.and_then(|b| b.get("query")).and_then(Value::as_str) else {
        return answer(
            200,
            graphql_schema::errors(&[
                "A query attribute must be specified and must be a string.".into()
            ]),
        );
    };
    let variables = body
        .and_then(|b| b.get("variables"))
        .cloned()
        .unwrap_or(Value::Null);
    let calls = match graphql_schema::validate(query, &variables) {
        Ok(calls) => calls,
        Err(problems) => return answer(200, graphql_schema::errors(&problems)),
    };
    let mut data = serde_json::Map::new();
    for call in calls {
        let payload = match enable_auto_merge(st, base, &call.input) {
            Ok(payload) => payload,
            Err(response) => return *response,
        };
        data.insert(
            call.field.alias.clone().unwrap_or(call.field.name.clone()),
            graphql_schema::project(&payload, &call.field.selections),
        );
    }
    answer(200, json!({ "data": data }))
}

/// `enablePullRequestAutoMerge` with a checked input: the full payload, or
/// GitHub's refusal.
fn enable_auto_merge(
    st: &mut DoubleState,
    base: &str,
    input: &serde_json::Map<String, Value>,
) -> Result<Value, Box<Response>> {
    let node_id = input
        .get("pullRequestId")
        .and_then(Value::as_str)
        .unwrap_or("");
    // The schema's default when `mergeMethod` is omitted.
    let method = input
        .get("mergeMethod")
        .and_then(Value::as_str)
        .unwrap_or("MERGE")
        .to_ascii_lowercase();
    let bot = st.bot_login.clone();
    let found = st.repos.values_mut().find_map(|r| {
        let n = r
            .pulls
            .values()
            .find(|p| p.node_id == node_id)
            .map(|p| p.number)?;
        Some((r, n))
    });
    let Some((repo, number)) = found else {
        return Err(Box::new(answer(
            200,
            json!({
                "data": { "enablePullRequestAutoMerge": null },
                "errors": [{ "type": "NOT_FOUND", "path": ["enablePullRequestAutoMerge"], "locations": [{ "line": 2, "column": 3 }],
                             "message": format!("Could not resolve to a node with the global id of '{node_id}'") }]
            }),
        )));
    };
    sync_heads(repo);
    if !repo.allow_auto_merge {
        return Err(Box::new(graphql_error(
            "UNPROCESSABLE",
            "Pull request Auto merge is not allowed for this repository",
        )));
    }
    let p = repo.pulls[&number].clone();
    if p.state != "open" {
        return Err(Box::new(graphql_error(
            "UNPROCESSABLE",
            "Pull request Pull request is closed",
        )));
    }
    // The pin: refuse when the head is no longer the commit the caller saw.
    if let Some(expected) = input.get("expectedHeadOid").and_then(Value::as_str)
        && !p.head_sha.starts_with(&expected.to_ascii_lowercase())
    {
        return Err(Box::new(graphql_error(
            "UNPROCESSABLE",
            &format!(
                "Pull request expected head oid {expected} does not match the current head oid {}",
                p.head_sha
            ),
        )));
    }
    if mergeable_state(repo, &p) == "clean" {
        return Err(Box::new(graphql_error(
            "UNPROCESSABLE",
            "Pull request Pull request is in clean status",
        )));
    }
    let ts = now();
    repo.pulls.get_mut(&number).unwrap().auto_merge = Some(method.clone());
    let p = repo.pulls[&number].clone();
    let actor = json!({
        "login": bot, "avatarUrl": format!("{base}/avatars/u/42"),
        "resourcePath": format!("/{bot}"), "url": format!("{base}/{bot}")
    });
    let url = format!("{base}/{}/{}/pull/{number}", repo.owner, repo.name);
    let pull_request = json!({
        "id": p.node_id, "number": number, "headRefOid": p.head_sha, "headRefName": p.head_ref,
        "baseRefName": p.base_ref, "isDraft": false, "merged": p.merged, "state": "OPEN",
        "title": p.title, "url": url,
        "autoMergeRequest": {
            "enabledAt": ts, "mergeMethod": method.to_ascii_uppercase(), "enabledBy": actor,
            "authorEmail": input.get("authorEmail").cloned().unwrap_or(Value::Null),
            "commitBody": input.get("commitBody").cloned().unwrap_or(Value::Null),
            "commitHeadline": input.get("commitHeadline").cloned().unwrap_or(Value::Null),
            "pullRequest": { "id": p.node_id, "number": number }
        }
    });
    Ok(json!({
        "actor": actor,
        "clientMutationId": input.get("clientMutationId").cloned().unwrap_or(Value::Null),
        "pullRequest": pull_request
    }))
}

fn installation_token(st: &mut DoubleState, id: &str, bearer: Option<&str>) -> Response {
    let Some(app) = &st.app else {
        return answer(404, error_body("Not Found"));
    };
    if id.parse::<u64>().ok() != Some(app.installation_id) {
        return answer(404, error_body("Not Found"));
    }
    let Some(jwt) = bearer else {
        return answer(401, error_body("A JSON web token could not be decoded"));
    };
    let key = match octocrab::jsonwebtoken::DecodingKey::from_rsa_pem(&app.public_key_pem) {
        Ok(k) => k,
        Err(_) => return answer(500, error_body("double: bad public key")),
    };
    let mut validation =
        octocrab::jsonwebtoken::Validation::new(octocrab::jsonwebtoken::Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.validate_aud = false;
    let claims = match octocrab::jsonwebtoken::decode::<Value>(jwt, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return answer(
                401,
                error_body(&format!("A JSON web token could not be decoded: {e}")),
            );
        }
    };
    let iss_ok = claims.get("iss").is_some_and(|v| {
        v.as_u64() == Some(app.app_id) || v.as_str() == Some(&app.app_id.to_string())
    });
    if !iss_ok {
        return answer(401, error_body("'Issuer' claim ('iss') must be an Integer"));
    }
    st.next_id += 1;
    let token = format!("ghs_double{:016}", st.next_id);
    st.tokens.insert(token.clone());
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    answer(
        201,
        json!({ "token": token, "expires_at": expires, "permissions": { "contents": "write", "pull_requests": "write", "checks": "read" }, "repository_selection": "all" }),
    )
}

/// Waits until `f` holds or `timeout` passes; for asserting on async effects.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

impl GitHubDouble {
    /// Client settings pointing at this double with its token, and retry
    /// delays short enough for tests.
    pub fn client_settings(&self, repository: &str) -> relbot::release::github::GithubSettings {
        use relbot::release::github::{GitHubAuth, GithubSettings, RetryPolicy};
        GithubSettings {
            api_url: self.api_url(),
            repository: repository.to_string(),
            auth: GitHubAuth::Token(octocrab::secrecy::SecretString::from(
                Self::TOKEN.to_string(),
            )),
            retry: RetryPolicy {
                max_attempts: 3,
                backoff_base: Duration::from_millis(10),
                backoff_max: Duration::from_millis(50),
                max_rate_limit_waits: 2,
                rate_limit_cap: Duration::from_secs(5),
            },
        }
    }
}
