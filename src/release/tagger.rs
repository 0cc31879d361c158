//! `relbot tag`: the next semantic version of a component, computed from the
//! commit messages since its last tag, created as an annotated tag and
//! optionally pushed. The rules are in `docs/tagging.md`; in short:
//!
//! - last tag = highest `<prefix>[v]X.Y.Z` reachable from HEAD (pre-releases,
//!   other prefixes and non-semver tags are ignored);
//! - `feat:` → minor, `fix:`/`perf:` → patch, `!`/`BREAKING CHANGE:` → major
//!   (minor while below 1.0.0 unless configured), `#major`/`#minor`/`#patch`
//!   anywhere in a message (the higher of token and type wins);
//! - the highest bump of all commits wins; lower components reset;
//! - the first tag is the initial version (default 0.1.0);
//! - nothing releasable → no tag, and the plan says why.
//!
//! [`plan_tag`] only reads; [`create_tag`] writes; [`tag`] does both and
//! honours `dry_run`.

use std::path::{Component, Path, PathBuf};

use git2::{Oid, Repository, Signature, Sort};
use semver::Version;

mod commits;

pub use commits::{Bump, MessageBump, classify_message, parse_tag_version};

use crate::revision::short_revision;
use crate::source::git::push::{PushError, push_refspec};
use crate::source::git::{GitCredentials, GitError};

/// How `relbot tag` behaves.
#[derive(Debug, Clone)]
pub struct TagOptions {
    /// Per-component tag prefix, e.g. `django-api-` for `django-api-0.1.2`.
    pub prefix: String,
    /// Only commits that change this directory (relative to the repository
    /// root) count.
    pub path: Option<PathBuf>,
    /// The first tag's version.
    pub initial_version: Version,
    /// Below 1.0.0 a breaking change bumps minor unless this is set.
    pub breaking_bumps_major_before_1: bool,
    /// Bump for messages that are not Conventional Commits (default none).
    pub default_bump: Bump,
    /// Plan and report only.
    pub dry_run: bool,
    /// Remote to push the new tag to (e.g. `origin`).
    pub push: Option<String>,
    /// Tagger name and e-mail; default: the repository's `user.name`/`user.email`,
    /// else `relbot <relbot@localhost>`.
    pub tagger: Option<(String, String)>,
    /// Token for pushing over http(s).
    pub credentials: GitCredentials,
}

impl Default for TagOptions {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            path: None,
            initial_version: Version::new(0, 1, 0),
            breaking_bumps_major_before_1: false,
            default_bump: Bump::None,
            dry_run: false,
            push: None,
            tagger: None,
            credentials: GitCredentials::none(),
        }
    }
}

/// The component's last release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousTag {
    pub name: String,
    pub version: Version,
    /// Commit the tag points at (full SHA).
    pub commit: String,
}

/// One commit since the last tag that touches the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsideredCommit {
    pub sha: String,
    pub subject: String,
    /// What it contributes (after `default_bump` and the below-1.0 rule).
    pub bump: Bump,
    pub breaking: bool,
}

/// The tag to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextTag {
    pub name: String,
    pub version: Version,
}

/// What `relbot tag` would do, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPlan {
    /// HEAD when planned (full SHA); creation refuses if it moved.
    pub head: String,
    pub prefix: String,
    pub path: Option<PathBuf>,
    pub previous: Option<PreviousTag>,
    /// Commits since `previous` that touch `path`, newest first.
    pub commits: Vec<ConsideredCommit>,
    /// Commits since `previous` left out because they do not touch `path`.
    pub skipped_commits: usize,
    /// The highest bump of `commits`.
    pub bump: Bump,
    /// None: nothing to tag; [`TagPlan::summary`] says why.
    pub next: Option<NextTag>,
}

impl TagPlan {
    /// One line for people: the tag and why, or why there is none.
    pub fn summary(&self) -> String {
        let since = match &self.previous {
            Some(p) => format!("since {}", p.name),
            None => "in history (no earlier tag)".to_string(),
        };
        let scope = match &self.path {
            Some(p) => format!(" touching {}", p.display()),
            None => String::new(),
        };
        if let Some(next) = &self.next {
            return match &self.previous {
                Some(p) => format!(
                    "{} ({} bump from {}, {} commit{}{scope})",
                    next.name,
                    self.bump,
                    p.name,
                    self.commits.len(),
                    plural(self.commits.len())
                ),
                None => format!(
                    "{} (first tag with prefix \"{}\", {} commit{}{scope})",
                    next.name,
                    self.prefix,
                    self.commits.len(),
                    plural(self.commits.len())
                ),
            };
        }
        if let Some(p) = self.previous.as_ref().filter(|p| p.commit == self.head) {
            return format!(
                "{} already points at HEAD ({}): nothing to tag",
                p.name,
                short_revision(&self.head)
            );
        }
        if self.commits.is_empty() {
            return format!("no commits{scope} {since}: nothing to tag");
        }
        format!(
            "{} commit{}{scope} {since}, none releasable (feat → minor, fix/perf → patch, \
             breaking → major, or #major/#minor/#patch): nothing to tag",
            self.commits.len(),
            plural(self.commits.len())
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A tag that was created (and perhaps pushed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTag {
    pub name: String,
    pub version: Version,
    /// The annotated tag object's SHA.
    pub tag_object: String,
    /// The commit it points at.
    pub commit: String,
    /// The remote it was pushed to.
    pub pushed_to: Option<String>,
}

/// What [`tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOutcome {
    pub plan: TagPlan,
    /// None for a dry run or when there is nothing to tag.
    pub created: Option<CreatedTag>,
}

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("cannot open git repository at {}: {detail}", path.display())]
    Open { path: PathBuf, detail: String },

    #[error("repository {} has no commits yet: commit something before tagging", path.display())]
    NoHead { path: PathBuf },

    #[error(
        "repository {} is a shallow clone, so earlier tags and commits are missing: \
         fetch the full history (`git fetch --unshallow --tags`, or `fetch-depth: 0` in actions/checkout)",
        path.display()
    )]
    Shallow { path: PathBuf },

    #[error("--path {}: {detail}", path.display())]
    BadPath { path: PathBuf, detail: String },

    #[error("{context}: {detail}")]
    Git { context: String, detail: String },

    #[error("nothing to tag: {summary}")]
    NothingToTag { summary: String },

    #[error("HEAD moved from {planned} to {now} since the tag was planned: plan again")]
    HeadMoved { planned: String, now: String },

    #[error(
        "tag {name} already exists (at {target}): it is not reachable from HEAD, so another branch was released with this version; tag by hand or pick another --prefix"
    )]
    TagExists { name: String, target: String },

    #[error("no remote named \"{remote}\" in {}: add it with `git remote add` or pass another --push remote", path.display())]
    RemoteNotFound { remote: String, path: PathBuf },

    #[error(
        "pushing tag {tag} to {remote} failed (the local tag was removed so a retry starts over): {source}"
    )]
    Push {
        tag: String,
        remote: String,
        #[source]
        source: GitError,
    },

    #[error(
        "{remote} rejected tag {tag}: {reason} (the local tag was removed so a retry starts over)"
    )]
    PushRejected {
        tag: String,
        remote: String,
        reason: String,
    },
}

fn git_err(context: impl Into<String>) -> impl FnOnce(git2::Error) -> TagError {
    let context = context.into();
    move |e| TagError::Git {
        context,
        detail: e.message().to_string(),
    }
}

fn open(repo_path: &Path) -> Result<Repository, TagError> {
    Repository::discover(repo_path).map_err(|e| TagError::Open {
        path: repo_path.to_path_buf(),
        detail: e.message().to_string(),
    })
}

fn head_commit(repo: &Repository, repo_path: &Path) -> Result<Oid, TagError> {
    repo.head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id())
        .ok_or_else(|| TagError::NoHead {
            path: repo_path.to_path_buf(),
        })
}

/// Computes the next tag; reads the repository only.
pub fn plan_tag(repo_path: &Path, options: &TagOptions) -> Result<TagPlan, TagError> {
    let repo = open(repo_path)?;
    // In a shallow clone the last tag may be out of reach and the plan
    // would silently restart at the initial version.
    if repo.is_shallow() {
        return Err(TagError::Shallow {
            path: repo_path.to_path_buf(),
        });
    }
    let head = head_commit(&repo, repo_path)?;
    let path = options
        .path
        .as_deref()
        .map(|p| component_path(&repo, p))
        .transpose()?
        .flatten();
    let previous = last_tag(&repo, head, &options.prefix)?;

    let mut plan = TagPlan {
        head: head.to_string(),
        prefix: options.prefix.clone(),
        path: path.clone(),
        previous: previous.clone(),
        commits: Vec::new(),
        skipped_commits: 0,
        bump: Bump::None,
        next: None,
    };
    if previous.as_ref().is_some_and(|p| p.commit == plan.head) {
        return Ok(plan);
    }

    let base = previous.as_ref().map(|p| &p.version);
    let mut walk = repo.revwalk().map_err(git_err("walking history"))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
        .map_err(git_err("walking history"))?;
    walk.push(head).map_err(git_err("walking history"))?;
    if let Some(p) = &previous {
        let oid = Oid::from_str(&p.commit).map_err(git_err("walking history"))?;
        walk.hide(oid).map_err(git_err("walking history"))?;
    }
    for oid in walk {
        let oid = oid.map_err(git_err("walking history"))?;
        let commit = repo
            .find_commit(oid)
            .map_err(git_err(format!("reading commit {oid}")))?;
        if let Some(path) = &path
            && !touches(&commit, path).map_err(git_err(format!("reading commit {oid}")))?
        {
            plan.skipped_commits += 1;
            continue;
        }
        let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        let parsed = classify_message(&message);
        let bump = effective_bump(parsed, base, options);
        plan.commits.push(ConsideredCommit {
            sha: oid.to_string(),
            subject: message.lines().next().unwrap_or("").trim().to_string(),
            bump,
            breaking: parsed.breaking,
        });
    }
    plan.bump = plan
        .commits
        .iter()
        .map(|c| c.bump)
        .max()
        .unwrap_or_default();
    if plan.bump > Bump::None {
        let (version, with_v) = match &previous {
            Some(p) => (
                plan.bump.apply(&p.version),
                parse_tag_version(&p.name, &options.prefix).is_some_and(|(_, v)| v),
            ),
            None => (options.initial_version.clone(), false),
        };
        let v = if with_v { "v" } else { "" };
        plan.next = Some(NextTag {
            name: format!("{}{v}{version}", options.prefix),
            version,
        });
    }
    Ok(plan)
}

/// A commit's bump once `default_bump` and the below-1.0 rule are applied.
fn effective_bump(parsed: MessageBump, base: Option<&Version>, options: &TagOptions) -> Bump {
    let mut bump = parsed.bump;
    if bump == Bump::None && !parsed.conventional {
        bump = options.default_bump;
    }
    let below_1 = base.is_some_and(|v| v.major == 0);
    if bump == Bump::Major && parsed.breaking && below_1 && !options.breaking_bumps_major_before_1 {
        bump = Bump::Minor;
    }
    bump
}

/// Highest `<prefix>` semver tag whose commit is HEAD or an ancestor of it.
fn last_tag(repo: &Repository, head: Oid, prefix: &str) -> Result<Option<PreviousTag>, TagError> {
    let names = repo.tag_names(None).map_err(git_err("listing tags"))?;
    let mut candidates: Vec<(Version, String)> = names
        .iter_bytes()
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter_map(|name| parse_tag_version(name, prefix).map(|(v, _)| (v, name.to_string())))
        .collect();
    // Highest first; the first reachable one wins.
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (version, name) in candidates {
        let Some(commit) = repo
            .find_reference(&format!("refs/tags/{name}"))
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
        else {
            continue; // a tag on a tree or blob
        };
        let reachable = commit.id() == head
            || repo
                .graph_descendant_of(head, commit.id())
                .map_err(git_err("checking tag ancestry"))?;
        if reachable {
            return Ok(Some(PreviousTag {
                name,
                version,
                commit: commit.id().to_string(),
            }));
        }
    }
    Ok(None)
}

/// `--path` as a path inside the repository, or None for the whole repository.
fn component_path(repo: &Repository, path: &Path) -> Result<Option<PathBuf>, TagError> {
    let bad = |detail: &str| TagError::BadPath {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let relative = if path.is_absolute() {
        let workdir = repo
            .workdir()
            .ok_or_else(|| bad("a bare repository needs a path relative to its root"))?;
        let workdir = workdir
            .canonicalize()
            .unwrap_or_else(|_| workdir.to_path_buf());
        let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        absolute
            .strip_prefix(&workdir)
            .map(Path::to_path_buf)
            .map_err(|_| bad(&format!("is outside the repository {}", workdir.display())))?
    } else {
        path.to_path_buf()
    };
    let mut clean = PathBuf::new();
    for part in relative.components() {
        match part {
            Component::Normal(p) => clean.push(p),
            Component::CurDir => {}
            _ => return Err(bad("must be a directory inside the repository, without ..")),
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// Whether a commit changes anything under `path` compared with its first
/// parent (a merge counts when it brings changes to `path` into the line).
fn touches(commit: &git2::Commit<'_>, path: &Path) -> Result<bool, git2::Error> {
    let entry_at = |tree: &git2::Tree<'_>| tree.get_path(path).ok().map(|e| e.id());
    let here = entry_at(&commit.tree()?);
    if commit.parent_count() == 0 {
        return Ok(here.is_some());
    }
    let there = entry_at(&commit.parent(0)?.tree()?);
    Ok(here != there)
}

/// The annotated tag's message: the tag name, then the commits it releases.
fn tag_message(plan: &TagPlan, next: &NextTag) -> String {
    const LISTED: usize = 200;
    let mut message = format!("{}\n\n", next.name);
    match &plan.previous {
        Some(p) => message.push_str(&format!("Changes since {}:\n", p.name)),
        None => message.push_str("Changes:\n"),
    }
    for c in plan
        .commits
        .iter()
        .filter(|c| c.bump > Bump::None)
        .take(LISTED)
    {
        message.push_str(&format!(
            "- {} {} ({})\n",
            short_revision(&c.sha),
            c.subject,
            c.bump
        ));
    }
    let releasable = plan.commits.iter().filter(|c| c.bump > Bump::None).count();
    if releasable > LISTED {
        message.push_str(&format!("- … and {} more\n", releasable - LISTED));
    }
    message
}

/// Creates the planned annotated tag at HEAD and pushes it if
/// `options.push` names a remote. Ignores `dry_run` (see [`tag`]).
pub fn create_tag(
    repo_path: &Path,
    plan: &TagPlan,
    options: &TagOptions,
) -> Result<CreatedTag, TagError> {
    let next = plan.next.as_ref().ok_or_else(|| TagError::NothingToTag {
        summary: plan.summary(),
    })?;
    let repo = open(repo_path)?;
    let head = head_commit(&repo, repo_path)?;
    if head.to_string() != plan.head {
        return Err(TagError::HeadMoved {
            planned: plan.head.clone(),
            now: head.to_string(),
        });
    }
    if let Ok(existing) = repo.find_reference(&format!("refs/tags/{}", next.name)) {
        let target = existing
            .peel_to_commit()
            .map(|c| c.id().to_string())
            .unwrap_or_else(|_| "a non-commit object".into());
        return Err(TagError::TagExists {
            name: next.name.clone(),
            target,
        });
    }
    // Fail before writing anything when the push cannot even start.
    if let Some(remote) = &options.push {
        find_remote(&repo, repo_path, remote)?;
    }
    let signature = match &options.tagger {
        Some((name, email)) => Signature::now(name, email),
        None => repo
            .signature()
            .or_else(|_| Signature::now("relbot", "relbot@localhost")),
    }
    .map_err(git_err("building the tagger signature"))?;
    let target = repo
        .find_object(head, Some(git2::ObjectType::Commit))
        .map_err(git_err("reading HEAD"))?;
    let tag_oid = repo
        .tag(
            &next.name,
            &target,
            &signature,
            &tag_message(plan, next),
            false,
        )
        .map_err(git_err(format!("creating tag {}", next.name)))?;

    let mut created = CreatedTag {
        name: next.name.clone(),
        version: next.version.clone(),
        tag_object: tag_oid.to_string(),
        commit: head.to_string(),
        pushed_to: None,
    };
    if let Some(remote) = &options.push {
        if let Err(e) = push_tag(&repo, repo_path, remote, &next.name, &options.credentials) {
            // Without the local tag a retry plans and pushes again; with it,
            // the retry would see HEAD tagged and never push.
            let _ = repo.tag_delete(&next.name);
            return Err(e);
        }
        created.pushed_to = Some(remote.clone());
    }
    Ok(created)
}

fn find_remote<'r>(
    repo: &'r Repository,
    repo_path: &Path,
    name: &str,
) -> Result<git2::Remote<'r>, TagError> {
    repo.find_remote(name)
        .map_err(|_| TagError::RemoteNotFound {
            remote: name.to_string(),
            path: repo_path.to_path_buf(),
        })
}

fn push_tag(
    repo: &Repository,
    repo_path: &Path,
    remote_name: &str,
    tag: &str,
    credentials: &GitCredentials,
) -> Result<(), TagError> {
    let mut remote = find_remote(repo, repo_path, remote_name)?;
    let url = remote
        .pushurl()
        .ok()
        .flatten()
        .or_else(|| remote.url().ok())
        .unwrap_or(remote_name)
        .to_string();
    let refspec = format!("refs/tags/{tag}:refs/tags/{tag}");
    let display_remote = format!("{remote_name} ({})", crate::redact::redact_userinfo(&url));
    push_refspec(&mut remote, &url, &refspec, credentials).map_err(|e| match e {
        PushError::Remote(source) => TagError::Push {
            tag: tag.to_string(),
            remote: display_remote,
            source,
        },
        PushError::Rejected { status, .. } => TagError::PushRejected {
            tag: tag.to_string(),
            remote: display_remote,
            reason: status,
        },
    })
}

/// Plans, and unless `dry_run`, creates (and pushes) the tag.
pub fn tag(repo_path: &Path, options: &TagOptions) -> Result<TagOutcome, TagError> {
    let plan = plan_tag(repo_path, options)?;
    let created = match &plan.next {
        Some(_) if !options.dry_run => Some(create_tag(repo_path, &plan, options)?),
        _ => None,
    };
    Ok(TagOutcome { plan, created })
}

#[cfg(test)]
mod tests;
