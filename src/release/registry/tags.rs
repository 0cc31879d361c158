//! Listing an image's tags: `GET /v2/<name>/tags/list?n=`, following
//! `Link: <…>; rel="next"` only within the same origin, at most `max_pages`
//! pages; an unchanged page costs a 304 thanks to its cached ETag.

use std::collections::HashSet;

use reqwest::header::{ETAG, LINK};
use reqwest::{Method, StatusCode, Url};

use super::client::{RegistryClient, Request};
use super::error::{RegistryError, invalid, parse_url, status_error, transport};
use super::pagination::{self, CachedPage};
use super::stats::bump;
use crate::image::ImageRef;

impl RegistryClient {
    /// Every tag of `image`, in the registry's order, duplicates removed.
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        self.list_tags_observed(image, &mut |_, _| {}).await
    }

    /// [`Self::list_tags`], calling `on_page(pages, tags)` after each page
    /// read, so a long listing can show how far it got.
    pub async fn list_tags_observed(
        &self,
        image: &ImageRef,
        on_page: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<Vec<String>, RegistryError> {
        let base = self.settings.base_url(image);
        let mut url = parse_url(&format!("{base}/v2/{}/tags/list", image.repository))?;
        if let Some(n) = self.settings.page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut tags = Vec::new();
        let mut seen_tags = HashSet::new();
        let mut seen_pages = HashSet::new();
        let mut next = Some(url);
        while let Some(page_url) = next.take() {
            if seen_pages.len() >= self.settings.max_pages {
                return Err(RegistryError::TooManyPages {
                    image: image.name(),
                    max_pages: self.settings.max_pages,
                });
            }
            if !seen_pages.insert(page_url.to_string()) {
                return Err(RegistryError::PaginationLoop {
                    url: page_url.to_string(),
                });
            }
            let page = self.tags_page(image, &page_url).await?;
            bump(&self.stats.pages);
            for tag in page.tags {
                if seen_tags.insert(tag.clone()) {
                    tags.push(tag);
                }
            }
            on_page(seen_pages.len(), tags.len());
            if let Some(link) = page.next {
                if !pagination::same_origin(&page_url, &link) {
                    return Err(RegistryError::CrossOriginLink {
                        url: page_url.to_string(),
                        next: link.to_string(),
                    });
                }
                next = Some(link);
            }
        }
        Ok(tags)
    }

    async fn tags_page(&self, image: &ImageRef, url: &Url) -> Result<CachedPage, RegistryError> {
        let cached = self.lock().pages.get(url.as_str()).cloned();
        let request = Request {
            image,
            method: Method::GET,
            url: url.clone(),
            accept: Some("application/json".into()),
            if_none_match: cached.as_ref().map(|c| c.etag.clone()),
        };
        let response = self.send(&request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            if let Some(mut page) = cached {
                bump(&self.stats.not_modified);
                // The ETag covers the body; the next-page link is a header and
                // can change on its own (a tag added after this page).
                if let Some(link) = response.headers().get(LINK).and_then(|v| v.to_str().ok()) {
                    page.next = pagination::next_link(link, url)
                        .transpose()
                        .map_err(|reason| invalid(url, &reason))?;
                }
                return Ok(page);
            }
            return Err(invalid(url, "304 Not Modified without having sent an ETag"));
        }
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                image: image.name(),
                what: "repository".into(),
                url: url.to_string(),
            });
        }
        if !status.is_success() {
            return Err(status_error(url, response, 1).await);
        }
        let next = match response.headers().get(LINK).and_then(|v| v.to_str().ok()) {
            Some(link) => pagination::next_link(link, url)
                .transpose()
                .map_err(|reason| invalid(url, &reason))?,
            None => None,
        };
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(transport(url))?;
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let list: TagList = serde_json::from_slice(&body)
            .map_err(|e| invalid(url, &format!("tag list is not JSON: {e}")))?;
        let page = CachedPage {
            etag: etag.clone().unwrap_or_default(),
            tags: list.tags.unwrap_or_default(),
            next,
        };
        let mut state = self.lock();
        if etag.is_some() {
            state.pages.insert(url.to_string(), page.clone());
        } else {
            state.pages.remove(url.as_str());
        }
        Ok(page)
    }
}
