//! The commit a source directory is checked out at, for the CLI's results.
//!
//! Asked of `git` itself when it is installed. libgit2 starts OpenSSL as it
//! initialises (for https remotes, which reading HEAD never uses), and that
//! start alone adds 4–5 MiB to the peak memory of a `relbot sync`, about a
//! tenth of it. Without `git` on the PATH, libgit2 answers instead.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The commit `root` is at, when it is inside a git checkout with a commit.
#[cfg(test)]
pub fn revision_of(root: &Path) -> Option<String> {
    ask_revision(root).answer()
}

/// Starts asking which commit `root` is at; [`RevisionQuery::answer`]
/// collects the answer. `git` takes a few tens of milliseconds to start,
/// which the caller spends rendering.
pub fn ask_revision(root: &Path) -> RevisionQuery {
    ask_with("git", root)
}

/// [`ask_revision`] with the `git` program to ask (a test names one that
/// does not exist to reach the libgit2 path).
fn ask_with(git: &str, root: &Path) -> RevisionQuery {
    let started = Command::new(git)
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    RevisionQuery {
        root: root.to_path_buf(),
        git: started.ok(),
    }
}

/// A revision being looked up (see [`ask_revision`]).
pub struct RevisionQuery {
    root: PathBuf,
    /// `None` when `git` could not be started.
    git: Option<Child>,
}

impl RevisionQuery {
    pub fn answer(mut self) -> Option<String> {
        let Some(mut git) = self.git.take() else {
            return revision_from_libgit2(&self.root);
        };
        let mut id = String::new();
        let read = git.stdout.take().map(|mut out| out.read_to_string(&mut id));
        // Not a checkout, or one without a commit yet, when git says no.
        let succeeded = git.wait().is_ok_and(|status| status.success());
        let id = id.trim();
        (succeeded && matches!(read, Some(Ok(_))) && !id.is_empty()).then(|| id.to_string())
    }
}

impl Drop for RevisionQuery {
    /// An answer nobody waited for (the render failed): reap `git`.
    fn drop(&mut self) {
        if let Some(git) = self.git.as_mut() {
            let _ = git.wait();
        }
    }
}

fn revision_from_libgit2(root: &Path) -> Option<String> {
    let repo = git2::Repository::discover(root).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    Some(head.id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit, made with libgit2 (no `git` needed),
    /// and that commit's id.
    fn checkout_with_a_commit() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        std::fs::create_dir(dir.path().join("apps")).expect("apps folder");
        std::fs::write(dir.path().join("apps/a.yaml"), "kind: ConfigMap\n").expect("write");
        let mut index = repo.index().expect("index");
        index.add_path(Path::new("apps/a.yaml")).expect("add file");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let who = git2::Signature::now("relbot", "relbot@example.com").expect("signature");
        let id = repo
            .commit(Some("HEAD"), &who, &who, "first", &tree, &[])
            .expect("commit");
        (dir, id.to_string())
    }

    #[test]
    fn a_checkout_names_its_commit_from_any_folder_inside_it() {
        let (dir, id) = checkout_with_a_commit();
        assert_eq!(revision_of(dir.path()).as_deref(), Some(id.as_str()));
        assert_eq!(
            revision_of(&dir.path().join("apps")).as_deref(),
            Some(id.as_str())
        );
    }

    #[test]
    fn without_git_installed_libgit2_names_the_same_commit() {
        let (dir, id) = checkout_with_a_commit();
        assert_eq!(
            ask_with("relbot-test-no-such-git", dir.path())
                .answer()
                .as_deref(),
            Some(id.as_str())
        );
    }

    #[test]
    fn a_plain_folder_or_a_repository_without_commits_has_no_revision() {
        let plain = tempfile::tempdir().expect("temp dir");
        assert_eq!(revision_of(plain.path()), None);
        let fresh = tempfile::tempdir().expect("temp dir");
        git2::Repository::init(fresh.path()).expect("init");
        assert_eq!(revision_of(fresh.path()), None);
        assert_eq!(
            ask_with("relbot-test-no-such-git", fresh.path()).answer(),
            None
        );
    }
}
