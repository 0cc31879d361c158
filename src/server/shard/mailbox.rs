//! Triggers for another replica, passed through the API server: one
//! ConfigMap (`relbot-triggers`) whose keys are letters addressed to a shard
//! (`shard-3.<id>`) or to the release bot's leader (`leader.<id>`). A sender
//! adds its key with a JSON merge patch (no resourceVersion, so concurrent
//! senders never conflict); the replica holding the address reads the
//! ConfigMap on each shard pass, queues the letters and removes exactly the
//! keys it read, so letters added meanwhile stay. Replicas never talk to
//! each other directly.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};

use crate::server::trigger::{News, Selector, Trigger};

/// Name of the ConfigMap the letters go through.
pub const MAILBOX_NAME: &str = "relbot-triggers";

/// Who a letter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Address {
    Shard(u32),
    /// The holder of the `relbot` Lease (bumps and merges).
    Leader,
}

impl Address {
    fn prefix(&self) -> String {
        match self {
            Address::Shard(i) => format!("shard-{i}"),
            Address::Leader => "leader".into(),
        }
    }

    fn of_key(key: &str) -> Option<Address> {
        let (prefix, _) = key.split_once('.')?;
        if prefix == "leader" {
            return Some(Address::Leader);
        }
        prefix
            .strip_prefix("shard-")?
            .parse()
            .ok()
            .map(Address::Shard)
    }
}

/// A trigger as stored in the ConfigMap. `names: None` means all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Letter {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prs: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
    /// A bump's announced tags (see [`News`]); absent: nothing announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    reason: String,
}

fn names(selector: &Selector<String>) -> Option<Vec<String>> {
    match selector {
        Selector::All => None,
        Selector::Only(set) => Some(set.iter().cloned().collect()),
    }
}

fn selector<T: Ord>(items: Option<Vec<T>>) -> Selector<T> {
    match items {
        None => Selector::All,
        Some(items) => Selector::only(items),
    }
}

impl Letter {
    fn of(trigger: &Trigger) -> Letter {
        match trigger {
            Trigger::Sync {
                apps,
                revision,
                reason,
            } => Letter {
                kind: "sync".into(),
                names: names(apps),
                prs: None,
                revision: revision.clone(),
                tags: Vec::new(),
                reason: reason.clone(),
            },
            Trigger::Bump {
                policies,
                news,
                reason,
            } => Letter {
                kind: "bump".into(),
                names: names(policies),
                prs: None,
                revision: None,
                tags: match news {
                    News::Unknown => Vec::new(),
                    News::Tags(tags) => tags.iter().cloned().collect(),
                },
                reason: reason.clone(),
            },
            Trigger::ContinueMerge { prs, reason } => Letter {
                kind: "continue_merge".into(),
                names: None,
                prs: match prs {
                    Selector::All => None,
                    Selector::Only(set) => Some(set.iter().copied().collect()),
                },
                revision: None,
                tags: Vec::new(),
                reason: reason.clone(),
            },
        }
    }

    fn trigger(self) -> Option<Trigger> {
        // The reason says the trigger came through another replica.
        let reason = format!(
            "{} (forwarded)",
            self.reason.trim_end_matches(" (forwarded)")
        );
        match self.kind.as_str() {
            "sync" => Some(Trigger::Sync {
                apps: selector(self.names),
                revision: self.revision,
                reason,
            }),
            "bump" => Some(Trigger::Bump {
                policies: selector(self.names),
                news: News::tags(self.tags),
                reason,
            }),
            "continue_merge" => Some(Trigger::ContinueMerge {
                prs: selector(self.prs),
                reason,
            }),
            _ => None,
        }
    }
}

/// The ConfigMap in the Lease namespace.
#[derive(Clone)]
pub struct Mailbox {
    api: Api<ConfigMap>,
    namespace: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot pass a trigger through ConfigMap {namespace}/{MAILBOX_NAME}: {} (does relbot's ServiceAccount have get/create/patch on configmaps?)",
    crate::cluster::kube_error::describe(.source)
)]
pub struct MailboxError {
    namespace: String,
    #[source]
    source: kube::Error,
}

impl Mailbox {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Mailbox {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    fn error(&self, source: kube::Error) -> MailboxError {
        MailboxError {
            namespace: self.namespace.clone(),
            source,
        }
    }

    /// Leaves `trigger` for whoever holds `to`.
    pub async fn send(&self, to: Address, trigger: &Trigger) -> Result<(), MailboxError> {
        let key = format!("{}.{:016x}", to.prefix(), rand::random::<u64>());
        let value = serde_json::to_string(&Letter::of(trigger)).expect("letters serialise");
        let patch = serde_json::json!({ "data": { &key: &value } });
        let params = PatchParams::default();
        match self
            .api
            .patch(MAILBOX_NAME, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(self.error(e)),
        }
        let created = ConfigMap {
            metadata: ObjectMeta {
                name: Some(MAILBOX_NAME.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(key, value.clone())])),
            ..ConfigMap::default()
        };
        match self.api.create(&PostParams::default(), &created).await {
            Ok(_) => Ok(()),
            // Another sender created it first: add the key to theirs.
            Err(kube::Error::Api(status)) if status.is_already_exists() => self
                .api
                .patch(MAILBOX_NAME, &params, &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| self.error(e)),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Takes the letters addressed to what `accept` says this replica holds.
    /// A letter that does not parse (written by a newer version) is removed
    /// with a warning rather than read again forever.
    pub async fn take(
        &self,
        accept: impl Fn(Address) -> bool,
    ) -> Result<Vec<(Address, Trigger)>, MailboxError> {
        let Some(map) = self
            .api
            .get_opt(MAILBOX_NAME)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(Vec::new());
        };
        let mut taken = Vec::new();
        let mut read = serde_json::Map::new();
        for (key, value) in map.data.unwrap_or_default() {
            let Some(address) = Address::of_key(&key).filter(|a| accept(*a)) else {
                continue;
            };
            match serde_json::from_str::<Letter>(&value)
                .ok()
                .and_then(Letter::trigger)
            {
                Some(trigger) => taken.push((address, trigger)),
                None => tracing::warn!(
                    key,
                    "ConfigMap {}/{MAILBOX_NAME}: a trigger this version cannot read; removed",
                    self.namespace
                ),
            }
            read.insert(key, serde_json::Value::Null);
        }
        if !read.is_empty() {
            let patch = serde_json::json!({ "data": read });
            self.api
                .patch(MAILBOX_NAME, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_carry_every_kind_of_trigger() {
        let triggers = [
            Trigger::Sync {
                apps: Selector::only(["a".to_string(), "b".to_string()]),
                revision: Some("abc".into()),
                reason: "push abc".into(),
            },
            Trigger::sync_all("push"),
            Trigger::bump_all("registry"),
            Trigger::Bump {
                policies: Selector::only(["web".to_string()]),
                news: News::tags(["1.1.0".to_string()]),
                reason: "registry".into(),
            },
            Trigger::ContinueMerge {
                prs: Selector::only([7]),
                reason: "check_suite".into(),
            },
        ];
        for trigger in triggers {
            let json = serde_json::to_string(&Letter::of(&trigger)).unwrap();
            let back = serde_json::from_str::<Letter>(&json)
                .unwrap()
                .trigger()
                .unwrap();
            assert_eq!(back.kind(), trigger.kind());
            assert_eq!(back.reason(), format!("{} (forwarded)", trigger.reason()));
            // Forwarding twice does not stack the note.
            let again = Letter::of(&back).trigger().unwrap();
            assert_eq!(again.reason(), back.reason());
            match (&back, &trigger) {
                (
                    Trigger::Sync {
                        apps: a,
                        revision: r,
                        ..
                    },
                    Trigger::Sync {
                        apps: b,
                        revision: s,
                        ..
                    },
                ) => assert_eq!((a, r), (b, s)),
                (
                    Trigger::Bump {
                        policies: a,
                        news: m,
                        ..
                    },
                    Trigger::Bump {
                        policies: b,
                        news: n,
                        ..
                    },
                ) => assert_eq!((a, m), (b, n)),
                (Trigger::ContinueMerge { prs: a, .. }, Trigger::ContinueMerge { prs: b, .. }) => {
                    assert_eq!(a, b)
                }
                other => panic!("kind changed: {other:?}"),
            }
        }
    }

    #[test]
    fn keys_name_their_address() {
        assert_eq!(Address::of_key("shard-12.00ff"), Some(Address::Shard(12)));
        assert_eq!(Address::of_key("leader.1234"), Some(Address::Leader));
        assert_eq!(Address::of_key("shard-x.1"), None);
        assert_eq!(Address::of_key("other"), None);
        assert!(Address::Shard(3).prefix().starts_with("shard-3"));
    }
}
