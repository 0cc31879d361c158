//! Lists: page by page from storage, or whole from the API server's watch
//! cache, each item handed on as it is parsed.

use kube::api::ListParams;
use kube::core::Request;
use serde_json::Value;

use super::{ApiFailure, LIST_PAGE, ReadOnlyCluster, request_error};
use crate::cluster::discovery::ResolvedKind;

/// Where a list is answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFrom {
    /// etcd, page by page ([`LIST_PAGE`] items a request): what is stored
    /// now.
    Storage,
    /// The API server's watch cache, whole (`resourceVersion=0`): what the
    /// server has seen, possibly a moment old, filtered in its memory. A
    /// label-selected list read from storage makes the server decode every
    /// object of the kind to pick a few; one such list per kind and
    /// application is what made a thousand applications slow. Argo CD and
    /// Flux plan from watches the same way.
    WatchCache,
}

impl ReadOnlyCluster {
    /// Lists a kind from storage, optionally label-selected and limited to
    /// one namespace.
    pub async fn list(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ApiFailure> {
        self.list_mapped(kind, namespace, selector, ListFrom::Storage, Some)
            .await
    }

    /// Lists a kind, passing each item through `keep` as it is parsed: what
    /// `keep` drops or trims is never held for the whole list, nor a page
    /// parsed whole next to its text (see [`super::list_page`]).
    pub async fn list_mapped<T>(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        selector: Option<&str>,
        from: ListFrom,
        keep: impl FnMut(Value) -> Option<T>,
    ) -> Result<Vec<T>, ApiFailure> {
        let params = match from {
            ListFrom::Storage => ListParams::default().limit(LIST_PAGE),
            ListFrom::WatchCache => ListParams::default().match_any(),
        };
        self.list_pages(kind, namespace, selector, params, keep)
            .await
    }

    async fn list_pages<T>(
        &self,
        kind: &ResolvedKind,
        namespace: Option<&str>,
        selector: Option<&str>,
        mut params: ListParams,
        mut keep: impl FnMut(Value) -> Option<T>,
    ) -> Result<Vec<T>, ApiFailure> {
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let api_version = kind.resource.api_version.clone();
        let mut out = Vec::new();
        loop {
            self.count_read(1);
            let request = Request::new(kind.collection_path(namespace))
                .list(&params)
                .map_err(request_error)?;
            let text = self
                .client
                .request_text(request)
                .await
                .map_err(ApiFailure::from_kube)?;
            let next = crate::cluster::list_page::for_each_item(&text, &mut |mut item| {
                // List items omit apiVersion/kind; put them back so they
                // read like objects.
                if let Some(map) = item.as_object_mut() {
                    map.entry("apiVersion")
                        .or_insert_with(|| api_version.clone().into());
                    map.entry("kind")
                        .or_insert_with(|| kind.resource.kind.clone().into());
                }
                out.extend(keep(item));
            })
            .map_err(|e| ApiFailure::from_kube(kube::Error::SerdeError(e)))?;
            match next {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        Ok(out)
    }
}
