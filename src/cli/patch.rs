//! `relbot bump --dry-run --output diff`: each proposed file edit as a
//! unified diff in `git diff`'s form, which reviewers and CI logs read and
//! `git apply` takes.

/// The `git diff` of one file from `old` to `new`, both relative to the
/// repository root; empty when they are equal.
pub fn file_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let body = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    format!("diff --git a/{path} b/{path}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_git_diff() {
        let old = "a: 1\nimage: x:1.0\nb: 2\n";
        let new = "a: 1\nimage: x:1.1\nb: 2\n";
        assert_eq!(
            file_diff("apps/web.yaml", old, new),
            "diff --git a/apps/web.yaml b/apps/web.yaml\n--- a/apps/web.yaml\n+++ b/apps/web.yaml\n@@ -1,3 +1,3 @@\n a: 1\n-image: x:1.0\n+image: x:1.1\n b: 2\n"
        );
        assert_eq!(file_diff("same.yaml", old, old), "");
    }
}
