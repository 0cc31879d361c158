//! Walking GitHub's paged lists. The next page is the `Link` header's
//! `rel="next"` when GitHub sends one; an answer without a `Link` header but
//! with a `total_count` larger than what was read asks for the next `page=`
//! itself (the combined-status endpoint documents no `Link` header). Every
//! walk is bounded, and one that stops early says how much it left unread
//! rather than passing a partial list off as the whole.

use http::Method;

use super::GitHubClient;
use super::error::GitHubError;

/// One decoded page: its items, and the endpoint's `total_count` if it has one.
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    pub total_count: Option<u64>,
}

/// What a bounded walk left unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// `total_count` says exactly how many items.
    Items(u64),
    /// The `Link` header's `rel="last"` says how many more pages.
    Pages(u64),
    /// There is a next page; how many follow it is not known.
    Some,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Items(n) => write!(f, "{n} more"),
            Self::Pages(n) => write!(f, "{n} more page(s)"),
            Self::Some => write!(f, "more"),
        }
    }
}

/// The items of a walk, and what it left unread (`None`: everything was read).
pub(crate) struct Listing<T> {
    pub items: Vec<T>,
    pub pages: usize,
    pub unread: Option<Unread>,
}

impl GitHubClient {
    /// GETs `first` and the pages after it, at most `max_pages`, decoding
    /// each answer with `decode`.
    pub(crate) async fn read_pages<W, T>(
        &self,
        first: String,
        max_pages: usize,
        decode: impl Fn(W) -> Page<T>,
    ) -> Result<Listing<T>, GitHubError>
    where
        W: serde::de::DeserializeOwned,
    {
        let mut items = Vec::new();
        let mut path = first;
        let mut pages = 0;
        loop {
            let response = self.rest(Method::GET, &path, None).await?;
            if response.status != 200 {
                return Err(response.into_error(&Method::GET, &path));
            }
            let page = decode(response.json::<W>(&Method::GET, &path)?);
            pages += 1;
            let page_len = page.items.len();
            items.extend(page.items);
            let link = response.headers.get("link").and_then(|v| v.to_str().ok());
            let next = match link {
                Some(link) => next_link_path(link),
                None => match page.total_count {
                    Some(total) if (items.len() as u64) < total && page_len > 0 => {
                        Some(with_page(&path, page_number(&path) + 1))
                    }
                    _ => None,
                },
            };
            let Some(next) = next else {
                return Ok(Listing {
                    items,
                    pages,
                    unread: None,
                });
            };
            if pages >= max_pages {
                let unread = match (page.total_count, link.and_then(last_page_number)) {
                    (Some(total), _) => Unread::Items(total.saturating_sub(items.len() as u64)),
                    (None, Some(last)) => Unread::Pages(last.saturating_sub(pages as u64)),
                    (None, None) => Unread::Some,
                };
                return Ok(Listing {
                    items,
                    pages,
                    unread: Some(unread),
                });
            }
            path = next;
        }
    }
}

/// The path of a `Link` header's `rel="next"` target, relative to the host.
pub(crate) fn next_link_path(link: &str) -> Option<String> {
    link_target(link, "next").and_then(|url| {
        let uri: http::Uri = url.parse().ok()?;
        uri.path_and_query().map(|pq| pq.as_str().to_string())
    })
}

fn link_target<'a>(link: &'a str, rel: &str) -> Option<&'a str> {
    let wanted = format!("rel=\"{rel}\"");
    link.split(',')
        .find(|part| part.contains(&wanted))
        .and_then(|part| part.split(';').next())
        .map(|url| url.trim().trim_start_matches('<').trim_end_matches('>'))
}

/// The `page=` of the `rel="last"` target.
fn last_page_number(link: &str) -> Option<u64> {
    let url = link_target(link, "last")?;
    query_value(url, "page")?.parse().ok()
}

fn query_value<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    path.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn page_number(path: &str) -> u64 {
    query_value(path, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// `path` with its `page=` set to `page`.
fn with_page(path: &str, page: u64) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("page="))
        .map(str::to_string)
        .collect();
    parts.push(format!("page={page}"));
    format!("{base}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_path_and_last_page() {
        let link = r#"<https://api.github.com/repositories/1/pulls?page=2&per_page=100>; rel="next", <https://api.github.com/repositories/1/pulls?page=5&per_page=100>; rel="last""#;
        assert_eq!(
            next_link_path(link).as_deref(),
            Some("/repositories/1/pulls?page=2&per_page=100")
        );
        assert_eq!(last_page_number(link), Some(5));
        assert_eq!(next_link_path(r#"<https://x/y?page=1>; rel="prev""#), None);
        // GitHub Enterprise: the API prefix is part of the path.
        assert_eq!(
            next_link_path(
                r#"<https://ghe.example.com/api/v3/repos/a/b/pulls?page=3>; rel="next""#
            )
            .as_deref(),
            Some("/api/v3/repos/a/b/pulls?page=3")
        );
    }

    #[test]
    fn next_page_without_a_link_header() {
        assert_eq!(
            with_page("/repos/a/b/commits/x/status?per_page=100", 2),
            "/repos/a/b/commits/x/status?per_page=100&page=2"
        );
        assert_eq!(
            with_page("/repos/a/b/commits/x/status?page=2&per_page=100", 3),
            "/repos/a/b/commits/x/status?per_page=100&page=3"
        );
        assert_eq!(page_number("/x?per_page=100"), 1);
        assert_eq!(page_number("/x?per_page=100&page=7"), 7);
    }

    #[test]
    fn unread_says_what_it_knows() {
        assert_eq!(Unread::Items(12).to_string(), "12 more");
        assert_eq!(Unread::Pages(3).to_string(), "3 more page(s)");
        assert_eq!(Unread::Some.to_string(), "more");
    }
}
