//! Where a trigger goes on a sharded replica: the part for shards held here
//! into the local queue, the rest to the shards' holders through the
//! mailbox; bumps and merges to the release bot's leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::ShardSet;
use super::mailbox::{Address, Mailbox};
use crate::server::queue::{LeaderState, Ticket, UpdateQueue};
use crate::server::trigger::{Selector, Trigger};

/// The sharding a reconciler and the webhooks see.
#[derive(Clone)]
pub struct Sharding {
    pub set: Arc<ShardSet>,
    mailbox: Mailbox,
    leader: LeaderState,
}

impl Sharding {
    pub fn new(set: Arc<ShardSet>, mailbox: Mailbox, leader: LeaderState) -> Self {
        Sharding {
            set,
            mailbox,
            leader,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.is_leader()
    }

    /// Leaves `trigger` for `to` in the background; a failure is logged
    /// (the holder's next poll covers a lost sync).
    pub fn forward(&self, to: Address, trigger: Trigger) {
        let mailbox = self.mailbox.clone();
        tokio::spawn(async move {
            match mailbox.send(to, &trigger).await {
                Ok(()) => tracing::debug!(?to, reason = trigger.reason(), "trigger forwarded"),
                Err(e) => tracing::warn!("{e}"),
            }
        });
    }

    /// Forwards a sync of `apps` (none of them held here) to their shards.
    pub fn forward_sync(
        &self,
        apps: impl IntoIterator<Item = String>,
        revision: Option<String>,
        reason: &str,
    ) {
        for (shard, apps) in self.by_shard(apps) {
            self.forward(
                Address::Shard(shard),
                Trigger::Sync {
                    apps: Selector::Only(apps),
                    revision: revision.clone(),
                    reason: reason.to_string(),
                },
            );
        }
    }

    fn by_shard(&self, apps: impl IntoIterator<Item = String>) -> BTreeMap<u32, BTreeSet<String>> {
        let mut groups: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for app in apps {
            groups
                .entry(self.set.shard_of(&app))
                .or_default()
                .insert(app);
        }
        groups
    }

    /// A trigger from outside (a webhook, or a merged PR that every shard
    /// must see): what is held here runs here, the rest is forwarded.
    /// Returns the local ticket, if any part runs here.
    pub fn route(&self, queue: &UpdateQueue, trigger: Trigger) -> Option<Ticket> {
        match trigger {
            Trigger::Sync {
                apps,
                revision,
                reason,
            } => {
                let held = self.set.held();
                match apps {
                    Selector::All => {
                        for shard in (0..self.set.count()).filter(|s| !held.contains(s)) {
                            self.forward(
                                Address::Shard(shard),
                                Trigger::Sync {
                                    apps: Selector::All,
                                    revision: revision.clone(),
                                    reason: reason.clone(),
                                },
                            );
                        }
                        queue.submit(Trigger::Sync {
                            apps: Selector::All,
                            revision,
                            reason,
                        })
                    }
                    Selector::Only(names) => {
                        let mut local = BTreeSet::new();
                        let mut remote = Vec::new();
                        for name in names {
                            if held.contains(&self.set.shard_of(&name)) {
                                local.insert(name);
                            } else {
                                remote.push(name);
                            }
                        }
                        self.forward_sync(remote, revision.clone(), &reason);
                        queue.submit(Trigger::Sync {
                            apps: Selector::Only(local),
                            revision,
                            reason,
                        })
                    }
                }
            }
            other if self.is_leader() => queue.submit(other),
            other => {
                self.forward(Address::Leader, other);
                None
            }
        }
    }
}
