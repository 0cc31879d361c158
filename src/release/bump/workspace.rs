//! The bumper's own working clone of the cluster-config repository: a
//! separate cache directory from the reconciler's checkout (the two never
//! share a worktree), fetched with [`GitSource`]. Commits are built from
//! git objects (base tree + new blobs), so writing a branch never touches
//! the worktree; the worktree is only read for planning.
//!
//! Pushes are force-pushes of `relbot/<policy>`; before pushing, the branch
//! the remote already has is compared by tree and parent, so a run with
//! nothing new pushes nothing.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Signature};

use super::{BumpError, BumpFile};
use crate::config::{CommitAuthor, RepoConfig};
use crate::redact::redact_userinfo;
use crate::source::git::push::{PushError, push_refspec};
use crate::source::git::{AuthAttempt, Checkout, GitCredentials, GitSource, classify_remote_error};

/// Where remote `relbot/*` branches are fetched to in the working clone.
const REMOTE_BOTS: &str = "refs/relbot-remote";

/// A working clone that follows the base branch.
#[derive(Debug, Clone)]
pub struct Workspace {
    source: GitSource,
    url: String,
    credentials: GitCredentials,
}

/// The commit a policy's branch should point at, and whether pushing it
/// changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedBranch {
    pub branch: String,
    pub commit: String,
    /// False when the remote branch already holds this tree on this parent.
    pub needs_push: bool,
}

impl Workspace {
    /// `cache_dir` must not be the reconciler's cache. `base` is the branch
    /// bump PRs target.
    pub fn new(
        cache_dir: PathBuf,
        repo: &RepoConfig,
        base: &str,
        credentials: GitCredentials,
    ) -> Result<Self, BumpError> {
        let follow = RepoConfig {
            url: repo.url.clone(),
            branch: base.to_string(),
            revision: None,
            interval: repo.interval,
        };
        // A password in the URL is the most specific credential, as for fetches.
        let credentials = match url::Url::parse(repo.url.trim())
            .ok()
            .and_then(|u| u.password().map(str::to_string))
            .filter(|p| !p.is_empty())
        {
            Some(password) => GitCredentials::with_token(password),
            None => credentials,
        };
        Ok(Self {
            source: GitSource::new(cache_dir, &follow, credentials.clone())?,
            url: repo.url.trim().to_string(),
            credentials,
        })
    }

    /// Fetches the base branch (checked out, detached, at its head) and the
    /// remote's `relbot/*` branches.
    pub fn sync(&self) -> Result<Checkout, BumpError> {
        let checkout = self.source.sync()?;
        let repo = self.open()?;
        let auth = AuthAttempt::default();
        let mut options = git2::FetchOptions::new();
        options
            .remote_callbacks(self.credentials.remote_callbacks(&auth))
            .download_tags(git2::AutotagOption::None)
            .prune(git2::FetchPrune::On)
            .update_fetchhead(false);
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| self.remote_err(&e, &auth, "fetch from"))?;
        remote
            .fetch(
                &[format!("+refs/heads/relbot/*:{REMOTE_BOTS}/*")],
                Some(&mut options),
                None,
            )
            .map_err(|e| self.remote_err(&e, &auth, "fetch from"))?;
        Ok(checkout)
    }

    /// The worktree holding the base branch's files.
    pub fn path(&self) -> PathBuf {
        self.source.repo_dir()
    }

    /// The commit for `branch`: `files` written over `base_revision`'s tree,
    /// one commit whose parent is `base_revision`. Reuses the remote
    /// branch's commit when it already has exactly that tree and parent.
    pub fn prepare(
        &self,
        base_revision: &str,
        branch: &str,
        files: &[BumpFile],
        author: &CommitAuthor,
        message: &str,
    ) -> Result<PreparedBranch, BumpError> {
        let repo = self.open()?;
        let err = |action: &str| {
            let action = action.to_string();
            move |e: git2::Error| BumpError::Workspace {
                action: action.clone(),
                detail: self.credentials.redact(e.message()),
            }
        };
        let base = repo
            .find_commit(Oid::from_str(base_revision).map_err(err("reading the base commit"))?)
            .map_err(err("reading the base commit"))?;
        let base_tree = base.tree().map_err(err("reading the base tree"))?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for file in files {
            let mode = base_tree
                .get_path(Path::new(&file.path))
                .map(|e| e.filemode())
                .unwrap_or(0o100644);
            let blob = repo
                .blob(file.new_text.as_bytes())
                .map_err(err("writing a blob"))?;
            update.upsert(file.path.as_str(), blob, file_mode(mode));
        }
        let tree_id = update
            .create_updated(&repo, &base_tree)
            .map_err(err("building the tree"))?;

        let existing = repo
            .find_reference(&format!("{REMOTE_BOTS}/{}", strip_bot_prefix(branch)))
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        if let Some(existing) = existing
            && existing.tree_id() == tree_id
            && existing.parent_ids().eq([base.id()])
        {
            return Ok(PreparedBranch {
                branch: branch.to_string(),
                commit: existing.id().to_string(),
                needs_push: false,
            });
        }
        let tree = repo.find_tree(tree_id).map_err(err("reading the tree"))?;
        let signature =
            Signature::now(&author.name, &author.email).map_err(err("commit author"))?;
        let commit = repo
            .commit(None, &signature, &signature, message, &tree, &[&base])
            .map_err(err("committing"))?;
        Ok(PreparedBranch {
            branch: branch.to_string(),
            commit: commit.to_string(),
            needs_push: true,
        })
    }

    /// Force-pushes `prepared.commit` to `refs/heads/<branch>`.
    pub fn push(&self, prepared: &PreparedBranch) -> Result<(), BumpError> {
        let repo = self.open()?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| self.remote_err(&e, &AuthAttempt::default(), "push to"))?;
        let refspec = format!("+{}:refs/heads/{}", prepared.commit, prepared.branch);
        match push_refspec(&mut remote, &self.url, &refspec, &self.credentials) {
            Ok(()) => {}
            Err(PushError::Remote(e)) => return Err(BumpError::Git(e)),
            Err(PushError::Rejected { refname, status }) => {
                return Err(BumpError::Workspace {
                    action: format!("pushing {} to {}", prepared.branch, self.display_url()),
                    detail: format!(
                        "the server refused the update ({refname}: {status}); check branch protection for relbot/*"
                    ),
                });
            }
        }
        // Remember what the remote now holds, so the next run compares
        // against it without fetching first.
        let oid = Oid::from_str(&prepared.commit).map_err(|e| BumpError::Workspace {
            action: "recording the pushed branch".into(),
            detail: e.message().to_string(),
        })?;
        repo.reference(
            &format!("{REMOTE_BOTS}/{}", strip_bot_prefix(&prepared.branch)),
            oid,
            true,
            "relbot bump push",
        )
        .map_err(|e| BumpError::Workspace {
            action: "recording the pushed branch".into(),
            detail: e.message().to_string(),
        })?;
        Ok(())
    }

    /// Whether commit `descendant` is `ancestor` or has it in its history
    /// (an application synced at `descendant` runs what `ancestor` merged).
    /// `None` when either commit is not in this clone.
    pub fn contains(&self, descendant: &str, ancestor: &str) -> Option<bool> {
        let repo = self.open().ok()?;
        let descendant = repo
            .revparse_single(descendant)
            .ok()?
            .peel_to_commit()
            .ok()?
            .id();
        let ancestor = repo
            .revparse_single(ancestor)
            .ok()?
            .peel_to_commit()
            .ok()?
            .id();
        if descendant == ancestor {
            return Some(true);
        }
        repo.graph_descendant_of(descendant, ancestor).ok()
    }

    fn open(&self) -> Result<Repository, BumpError> {
        Repository::open(self.path()).map_err(|e| BumpError::Workspace {
            action: format!("opening the working clone {}", self.path().display()),
            detail: e.message().to_string(),
        })
    }

    fn display_url(&self) -> String {
        redact_userinfo(&self.url)
    }

    fn remote_err(&self, err: &git2::Error, auth: &AuthAttempt, action: &'static str) -> BumpError {
        BumpError::Git(classify_remote_error(
            err,
            action,
            &self.display_url(),
            auth,
            &self.credentials,
        ))
    }
}

/// `relbot/django-api` → `django-api` (the fetch refspec maps `relbot/*`).
fn strip_bot_prefix(branch: &str) -> &str {
    branch.strip_prefix("relbot/").unwrap_or(branch)
}

fn file_mode(raw: i32) -> git2::FileMode {
    if raw == i32::from(git2::FileMode::BlobExecutable) {
        git2::FileMode::BlobExecutable
    } else {
        git2::FileMode::Blob
    }
}
