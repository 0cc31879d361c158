//! Desired objects an application's own lists did not return: do they
//! exist already (to tell "create" from "adopt" or "owned by another
//! application")? A few of a kind in a namespace are read by name; more,
//! with one list of the namespace. Listing for a handful would read every
//! object the namespace holds, once per application: a thousand small
//! applications sharing one namespace would make that quadratic.

use std::collections::{BTreeMap, HashMap};

use futures::{StreamExt, stream};
use serde_json::Value;

use super::live_key;
use crate::cluster::client::{ApiFailure, ReadOnlyCluster};
use crate::cluster::discovery::ResolvedKind;
use crate::manifest::ObjectKey;
use crate::sync::inventory::kind_id;
use crate::sync::problem::PlanProblem;

/// Up to this many objects of one kind in one namespace are read by name;
/// more are found with one list of the namespace.
const BY_NAME_MAX: usize = 16;

/// The live objects among `wanted` (kind and key of each), by key. A read
/// that fails is a problem of the plan; a namespace that does not exist yet
/// simply holds nothing.
pub(super) async fn find<'a>(
    cluster: &ReadOnlyCluster,
    wanted: impl Iterator<Item = (&'a ResolvedKind, &'a ObjectKey)>,
    concurrency: usize,
    problems: &mut Vec<PlanProblem>,
) -> HashMap<ObjectKey, Value> {
    let mut by_place: BTreeMap<(String, Option<String>), (ResolvedKind, Vec<String>)> =
        BTreeMap::new();
    for (kind, key) in wanted {
        by_place
            .entry((kind_id(kind), key.namespace.clone()))
            .or_insert_with(|| (kind.clone(), Vec::new()))
            .1
            .push(key.name.clone());
    }
    let reads: Vec<Read> = by_place
        .into_iter()
        .flat_map(|((_, namespace), (kind, names))| {
            if names.len() > BY_NAME_MAX {
                vec![Read::List { kind, namespace }]
            } else {
                names
                    .into_iter()
                    .map(|name| Read::Get {
                        kind: kind.clone(),
                        namespace: namespace.clone(),
                        name,
                    })
                    .collect()
            }
        })
        .collect();
    let found: Vec<Result<Vec<Value>, ApiFailure>> = stream::iter(reads)
        .map(|read| read.send(cluster))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut existing = HashMap::new();
    for items in found {
        match items {
            Ok(items) => {
                for item in items {
                    existing.insert(live_key(&item), item);
                }
            }
            // A namespace that does not exist yet lists as empty or 404; only
            // real failures matter, and the apply will surface them.
            Err(failure) if failure.is_not_found() => {}
            Err(failure) => problems.push(PlanProblem {
                key: None,
                origin: None,
                message: format!("cannot look up existing objects: {failure}"),
            }),
        }
    }
    existing
}

/// One read: an object by name, or a whole namespace's objects of a kind.
enum Read {
    Get {
        kind: ResolvedKind,
        namespace: Option<String>,
        name: String,
    },
    List {
        kind: ResolvedKind,
        namespace: Option<String>,
    },
}

impl Read {
    async fn send(self, cluster: &ReadOnlyCluster) -> Result<Vec<Value>, ApiFailure> {
        match self {
            Read::Get {
                kind,
                namespace,
                name,
            } => Ok(cluster
                .get(&kind, namespace.as_deref(), &name)
                .await?
                .into_iter()
                .collect()),
            Read::List { kind, namespace } => cluster.list(&kind, namespace.as_deref(), None).await,
        }
    }
}
