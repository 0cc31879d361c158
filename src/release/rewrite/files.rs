//! Which files of a repository an image policy may edit.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{PolicyTarget, RewriteError};

/// Globs used when a policy lists no `files`: every YAML file.
const DEFAULT_GLOBS: &[&str] = &["**/*.yaml", "**/*.yml"];

/// Files under `root` matching any of `globs` (relative to `root`, `/`
/// separated; `*` stays within a directory, `**` crosses them). Returns
/// paths relative to `root`, sorted. An empty list means every YAML file.
/// `.git` is skipped and symbolic links are not followed, so a link cannot
/// lead an edit outside the repository.
pub fn files_for_policy(root: &Path, globs: &[String]) -> Result<Vec<PathBuf>, RewriteError> {
    let set = glob_set(globs)?;
    let mut found = Vec::new();
    walk(root, Path::new(""), &set, &mut found)?;
    found.sort();
    Ok(found)
}

/// The files [`files_for_policy`] selects that mention the policy (its
/// image's last path component, or its name next to a marker), with their
/// text. The rest of a repository has nothing to do with one image and is
/// never parsed.
pub fn files_mentioning(
    root: &Path,
    globs: &[String],
    policy: &PolicyTarget,
) -> Result<Vec<(PathBuf, String)>, RewriteError> {
    let short_name = policy.image.rsplit('/').next().unwrap_or(policy.image);
    let mut out = Vec::new();
    for relative in files_for_policy(root, globs)? {
        let path = root.join(&relative);
        let text =
            std::fs::read_to_string(&path).map_err(|source| RewriteError::Io { path, source })?;
        let mentions = text.contains(short_name)
            || (text.contains(policy.name)
                && (text.contains("relbot:") || text.contains("$imagepolicy")));
        if mentions {
            out.push((relative, text));
        }
    }
    Ok(out)
}

fn glob_set(globs: &[String]) -> Result<GlobSet, RewriteError> {
    let mut builder = GlobSetBuilder::new();
    let defaults: Vec<String> = DEFAULT_GLOBS.iter().map(|g| g.to_string()).collect();
    let globs = if globs.is_empty() {
        &defaults[..]
    } else {
        globs
    };
    for pattern in globs {
        let glob = GlobBuilder::new(pattern.trim_start_matches("./"))
            .literal_separator(true)
            .build()
            .map_err(|source| RewriteError::Glob {
                pattern: pattern.clone(),
                source,
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| RewriteError::Glob {
        pattern: globs.join(", "),
        source,
    })
}

fn walk(
    root: &Path,
    relative: &Path,
    set: &GlobSet,
    found: &mut Vec<PathBuf>,
) -> Result<(), RewriteError> {
    let dir = root.join(relative);
    let io = |source| RewriteError::Io {
        path: dir.clone(),
        source,
    };
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let file_type = entry.file_type().map_err(io)?;
        let name = entry.file_name();
        let path = relative.join(&name);
        if file_type.is_dir() {
            if name != ".git" {
                walk(root, &path, set, found)?;
            }
        } else if file_type.is_file() && set.is_match(&path) {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_globs_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "manifests/ahuora/deploy.yaml",
            "manifests/ahuora/db/pg.yaml",
            "manifests/other/x.yaml",
            "manifests/ahuora/readme.md",
            ".git/config.yaml",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "a: 1\n").unwrap();
        }
        let files = files_for_policy(root, &["manifests/ahuora/**/*.yaml".to_string()]).unwrap();
        assert_eq!(
            files,
            vec![
                PathBuf::from("manifests/ahuora/db/pg.yaml"),
                PathBuf::from("manifests/ahuora/deploy.yaml")
            ]
        );
        let files = files_for_policy(root, &["manifests/*.yaml".to_string()]).unwrap();
        assert!(files.is_empty(), "{files:?}");
        let all = files_for_policy(root, &[]).unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(files_for_policy(root, &["a/[".to_string()]).is_err());
    }
}
