//! Links into the repository on GitHub: a commit, a file line at a commit.
//! Only when the repository is a GitHub one; otherwise the pages show plain
//! text.

use crate::config::Config;

/// `https://github.com/<owner>/<name>`, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoLinks {
    web: Option<url::Url>,
}

impl RepoLinks {
    /// From `repo.url` when it is on github.com, else from
    /// `github.repository` when GitHub is github.com itself.
    pub fn from_config(config: &Config) -> RepoLinks {
        let from_url = config.repo.as_ref().and_then(|r| github_repository(&r.url));
        let from_github = config
            .github
            .as_ref()
            .filter(|g| {
                g.api_url
                    .as_deref()
                    .is_none_or(|u| u.trim_end_matches('/') == "https://api.github.com")
            })
            .map(|g| g.repository.clone());
        RepoLinks::for_repository(from_url.or(from_github).as_deref())
    }

    /// For `owner/name` on github.com.
    pub fn for_repository(repository: Option<&str>) -> RepoLinks {
        let web = repository
            .filter(|r| {
                let mut parts = r.split('/');
                matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty())
            })
            .and_then(|r| url::Url::parse(&format!("https://github.com/{r}")).ok());
        RepoLinks { web }
    }

    fn with_segments(&self, segments: &[&str]) -> Option<String> {
        let mut url = self.web.clone()?;
        url.path_segments_mut().ok()?.extend(segments);
        Some(url.into())
    }

    /// The commit page.
    pub fn commit(&self, sha: &str) -> Option<String> {
        is_sha(sha).then(|| self.with_segments(&["commit", sha]))?
    }

    /// A file at a commit, scrolled to `line`.
    pub fn file(&self, sha: &str, path: &str, line: usize) -> Option<String> {
        if !is_sha(sha) {
            return None;
        }
        let mut segments = vec!["blob", sha];
        segments.extend(path.split('/').filter(|s| !s.is_empty() && *s != "."));
        self.with_segments(&segments)
            .map(|url| format!("{url}#L{line}"))
    }
}

fn is_sha(text: &str) -> bool {
    (7..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `owner/name` of a github.com clone URL (https or scp-like ssh).
fn github_repository(url: &str) -> Option<String> {
    let rest = if let Some(rest) = url.strip_prefix("git@github.com:") {
        rest.to_string()
    } else {
        let parsed = url::Url::parse(url).ok()?;
        if parsed.host_str()? != "github.com" {
            return None;
        }
        parsed.path().trim_start_matches('/').to_string()
    };
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(owner), Some(name), None) if !owner.is_empty() && !name.is_empty() => {
            Some(format!("{owner}/{name}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn config(yaml: &str) -> Config {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_github_clone_url_gives_commit_and_file_links() {
        let links = RepoLinks::from_config(&config(
            "repo: { url: 'https://x-access-token:t@github.com/ahuora/cluster-config.git' }\napplications: []\n",
        ));
        assert_eq!(
            links.commit(SHA).as_deref(),
            Some(format!("https://github.com/ahuora/cluster-config/commit/{SHA}").as_str())
        );
        assert_eq!(
            links.file(SHA, "platform/api/deployment.yaml", 3).as_deref(),
            Some(
                format!(
                    "https://github.com/ahuora/cluster-config/blob/{SHA}/platform/api/deployment.yaml#L3"
                )
                .as_str()
            )
        );
        assert_eq!(
            links.file(SHA, "a dir/x#y.yaml", 1).unwrap(),
            format!("https://github.com/ahuora/cluster-config/blob/{SHA}/a%20dir/x%23y.yaml#L1"),
            "path characters are escaped"
        );
    }

    #[test]
    fn ssh_urls_and_the_github_section_count_other_hosts_do_not() {
        let ssh = RepoLinks::from_config(&config(
            "repo: { url: 'git@github.com:acme/config.git' }\napplications: []\n",
        ));
        assert!(
            ssh.commit(SHA)
                .unwrap()
                .starts_with("https://github.com/acme/config/")
        );
        let section = RepoLinks::from_config(&config(
            "repo: { url: 'file:///srv/git/config' }\ngithub: { repository: acme/config }\napplications: []\n",
        ));
        assert!(section.commit(SHA).is_some());
        let gitlab = RepoLinks::from_config(&config(
            "repo: { url: 'https://gitlab.com/acme/config.git' }\napplications: []\n",
        ));
        assert_eq!(gitlab.commit(SHA), None);
        let enterprise = RepoLinks::from_config(&config(
            "repo: { url: 'file:///x' }\ngithub: { repository: acme/config, apiUrl: 'https://ghe.example/api/v3' }\napplications: []\n",
        ));
        assert_eq!(enterprise.commit(SHA), None);
        assert_eq!(
            section.commit("main; rm"),
            None,
            "only commit ids are linked"
        );
    }
}
