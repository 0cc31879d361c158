//! Sharding `relbot serve` across replicas.
//!
//! The design, chosen as the simplest one that is correct with nothing but
//! Leases and the API server (no replica-to-replica networking, no consensus
//! of our own):
//!
//! - `--shards N` fixes the number of shards. An application belongs to shard
//!   `fnv1a(name) % N` ([`assign::shard_of`]): stable across processes and
//!   versions, so every replica agrees without asking anyone.
//! - Each shard is a Lease, `relbot-shard-<i>`, held with the same rules as
//!   the leader Lease ([`super::lease`]): 15 s duration, renewed every 2 s,
//!   given up after 10 s without a renewal, taken by another replica only
//!   once its record has not changed for 15 s on that replica's clock.
//! - Each replica also renews a membership Lease, `relbot-member-<identity>`,
//!   so the replicas alive are counted (a replica holding no shard yet is
//!   still seen). A replica holds at most `ceil(N / members)` shards: it
//!   hands back the highest-numbered ones beyond that (so a new replica gets
//!   its share) and tries free or expired ones while below it (so a dead
//!   replica's shards are taken over once its Leases expire).
//! - Before each application's sync the reconciler asks [`ShardSet::hold`]:
//!   the shard must be held and renewed within the renew deadline. A shard is
//!   handed back only after the sync in progress on it finished (the hold is
//!   a read lock the hand-back waits for), so two replicas never sync one
//!   application at once. A replica that cannot renew stops syncing the
//!   shard 5 s before anyone else may take it.
//! - Triggers for shards held elsewhere (webhooks reach any replica) and
//!   bumps on a replica that is not the release bot's leader travel through
//!   the ConfigMap `relbot-triggers` ([`mailbox`]).
//! - The release bot stays one-at-a-time across all replicas behind its own
//!   Lease, `relbot`, as without sharding.

pub mod assign;
pub mod mailbox;
mod members;
pub mod route;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::lease::{LeaseElector, LeaseSettings};
use super::metrics::Metrics;
use super::queue::LeaderState;
use super::trigger::Trigger;
pub use assign::shard_of;
use mailbox::{Address, Mailbox};
use members::Members;

/// Prefix of the shard Leases: `relbot-shard-0` … `relbot-shard-<N-1>`.
pub const SHARD_LEASE_PREFIX: &str = "relbot-shard-";
/// Prefix of the membership Leases: `relbot-member-<identity>`.
pub const MEMBER_LEASE_PREFIX: &str = "relbot-member-";
/// `--shards` from the environment.
pub const SHARDS_ENV: &str = "RELBOT_SHARDS";
/// The most shards accepted: each is a Lease renewed every 2 s.
pub use crate::config::MAX_SHARDS;

pub fn shard_lease_name(shard: u32) -> String {
    format!("{SHARD_LEASE_PREFIX}{shard}")
}

/// `relbot-member-<identity>`, with the identity made a valid object name
/// (lower case letters, digits, `-` and `.`, at most 253 characters).
pub fn member_lease_name(identity: &str) -> String {
    let cleaned: String = identity
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("{MEMBER_LEASE_PREFIX}{}", cleaned.trim_matches(['-', '.']));
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_string()
}

/// How this replica takes part.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    pub namespace: String,
    pub identity: String,
    pub shards: u32,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl ShardSettings {
    /// The leader Lease's timings (15 s / 10 s / 2 s).
    pub fn new(namespace: &str, identity: &str, shards: u32) -> Self {
        let base = LeaseSettings::new(namespace, "", identity);
        ShardSettings {
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            shards: shards.clamp(1, MAX_SHARDS),
            lease_duration: base.lease_duration,
            renew_deadline: base.renew_deadline,
            retry_period: base.retry_period,
        }
    }

    fn lease(&self, name: String) -> LeaseSettings {
        LeaseSettings {
            namespace: self.namespace.clone(),
            name,
            identity: self.identity.clone(),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        }
    }
}

struct Slot {
    /// Read: a sync of one of the shard's applications is running;
    /// write: the shard is being handed back.
    lock: Arc<RwLock<()>>,
    /// The last successful renewal while held.
    renewed: Mutex<Option<Instant>>,
}

/// Which shards this replica holds, as the reconciler sees them.
pub struct ShardSet {
    shards: u32,
    identity: String,
    renew_deadline: Duration,
    slots: Vec<Slot>,
    owned: watch::Sender<BTreeSet<u32>>,
}

/// Proof that a shard is held, kept for the length of one application's sync.
pub struct ShardHold {
    pub shard: u32,
    _guard: OwnedRwLockReadGuard<()>,
}

impl ShardSet {
    pub fn new(shards: u32, identity: &str, renew_deadline: Duration) -> Self {
        let shards = shards.clamp(1, MAX_SHARDS);
        ShardSet {
            shards,
            identity: identity.to_string(),
            renew_deadline,
            slots: (0..shards)
                .map(|_| Slot {
                    lock: Arc::new(RwLock::new(())),
                    renewed: Mutex::new(None),
                })
                .collect(),
            owned: watch::channel(BTreeSet::new()).0,
        }
    }

    pub fn count(&self) -> u32 {
        self.shards
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn shard_of(&self, application: &str) -> u32 {
        shard_of(application, self.shards)
    }

    fn renewed_at(&self, shard: u32) -> Option<Instant> {
        let slot = self.slots.get(shard as usize)?;
        *slot.renewed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Held, and renewed recently enough that nobody else may have taken it.
    pub fn holds(&self, shard: u32) -> bool {
        self.renewed_at(shard)
            .is_some_and(|t| t.elapsed() < self.renew_deadline)
    }

    /// Shards held now.
    pub fn held(&self) -> BTreeSet<u32> {
        (0..self.shards).filter(|s| self.holds(*s)).collect()
    }

    /// Follows the held shards (changes published by the shard loop).
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.owned.subscribe()
    }

    /// The hold for syncing `application`, or None when its shard is held
    /// elsewhere (or being handed back).
    pub fn hold(&self, application: &str) -> Option<ShardHold> {
        let shard = self.shard_of(application);
        let guard = self.slots[shard as usize]
            .lock
            .clone()
            .try_read_owned()
            .ok()?;
        self.holds(shard).then_some(ShardHold {
            shard,
            _guard: guard,
        })
    }

    fn set_renewed(&self, shard: u32, at: Option<Instant>) {
        if let Some(slot) = self.slots.get(shard as usize) {
            *slot.renewed.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }

    /// Waits for the sync in progress on `shard` (if any), then stops
    /// holding it; the Lease is released while the guard is kept.
    async fn hand_back(&self, shard: u32) -> OwnedRwLockWriteGuard<()> {
        let guard = self.slots[shard as usize].lock.clone().write_owned().await;
        self.set_renewed(shard, None);
        guard
    }

    /// Publishes the held set when it changed; returns the shards gained.
    fn publish(&self) -> BTreeSet<u32> {
        let now = self.held();
        let mut gained = BTreeSet::new();
        self.owned.send_if_modified(|old| {
            if *old == now {
                return false;
            }
            gained = now.difference(old).copied().collect();
            let lost: Vec<u32> = old.difference(&now).copied().collect();
            tracing::info!(identity = %self.identity, held = ?now, gained = ?gained, lost = ?lost, "shards changed");
            *old = now.clone();
            true
        });
        gained
    }
}

/// What one pass of the shard loop found.
pub struct Pass {
    /// Shards held now and not before.
    pub gained: BTreeSet<u32>,
    /// Triggers addressed to what this replica holds.
    pub letters: Vec<Trigger>,
    /// How long until another replica's Lease (shard or membership) may
    /// expire, if any is held elsewhere.
    pub wake: Option<Duration>,
}

/// Slack after an expiry before the pass that acts on it.
const EXPIRY_MARGIN: Duration = Duration::from_millis(50);

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The shard loop of one replica.
pub struct ShardManager {
    settings: ShardSettings,
    set: Arc<ShardSet>,
    shards: Vec<LeaseElector>,
    member: LeaseElector,
    members: Members,
    mailbox: Mailbox,
    leader: LeaderState,
    metrics: Arc<Metrics>,
}

impl ShardManager {
    pub fn new(
        client: kube::Client,
        settings: ShardSettings,
        set: Arc<ShardSet>,
        leader: LeaderState,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The electors' own leader gauge is for the `relbot` Lease; shard
        // electors report into a registry nobody scrapes.
        let unscraped = Arc::new(Metrics::new());
        let shards = (0..settings.shards)
            .map(|i| {
                LeaseElector::new(
                    client.clone(),
                    settings.lease(shard_lease_name(i)),
                    unscraped.clone(),
                )
            })
            .collect();
        let member = LeaseElector::new(
            client.clone(),
            settings.lease(member_lease_name(&settings.identity)),
            unscraped,
        );
        let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
        ShardManager {
            members: Members::new(
                leases,
                member_lease_name(&settings.identity),
                settings.lease_duration,
            ),
            mailbox: Mailbox::new(client, &settings.namespace),
            settings,
            set,
            shards,
            member,
            leader,
            metrics,
        }
    }

    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// Where this replica starts probing: spread by identity.
    fn start(&self) -> u32 {
        shard_of(&self.settings.identity, self.settings.shards)
    }

    /// One pass: membership, renewals, hand-backs, take-overs, letters.
    pub async fn pass(&self) -> Pass {
        if let Err(e) = self.member.try_acquire_or_renew().await {
            tracing::warn!("{e}");
        }
        let held = self.set.held();
        let mut wake = None;
        let plan = match self.members.list().await {
            Ok(leases) => {
                // Every shard Lease is watched, held or not, so a dead
                // replica's shard expires one Lease duration after its last
                // renewal was seen, not after this replica first probes it.
                for lease in &leases {
                    let shard = lease
                        .metadata
                        .name
                        .as_deref()
                        .and_then(|n| n.strip_prefix(SHARD_LEASE_PREFIX))
                        .and_then(|i| i.parse::<u32>().ok());
                    if let Some(elector) = shard.and_then(|i| self.shards.get(i as usize)) {
                        elector.note(lease);
                        wake = earliest(wake, elector.expires_in());
                    }
                }
                let (members, member_expiry) = self.members.count(&leases).await;
                wake = earliest(wake, member_expiry);
                assign::plan(self.settings.shards, &held, members, self.start())
            }
            Err(e) => {
                tracing::warn!("{e}");
                // Unknown membership: keep what is held, take nothing new.
                assign::Plan {
                    keep: held.iter().copied().collect(),
                    cap: held.len(),
                    ..assign::Plan::default()
                }
            }
        };
        for shard in &plan.keep {
            self.renew(*shard).await;
        }
        for shard in &plan.release {
            let _handing_back = self.set.hand_back(*shard).await;
            if let Err(e) = self.shards[*shard as usize].release().await {
                tracing::warn!("{e}");
            }
            tracing::info!(shard, cap = plan.cap, "handed a shard back");
        }
        let mut holding = self.set.held().len();
        let mut taken = Vec::new();
        for shard in &plan.probe {
            if holding >= plan.cap {
                break;
            }
            if self.renew(*shard).await {
                holding += 1;
                // Judged on the record replaced, not on the list read at the
                // start of the pass (a shard handed back meanwhile is free).
                if self.shards[*shard as usize].took_over() {
                    taken.push(*shard);
                }
            }
        }
        let gained = self.set.publish();
        for shard in taken.iter().filter(|s| gained.contains(s)) {
            tracing::info!(shard, "took over a shard whose holder stopped renewing");
            self.metrics.shard_takeovers.inc(&[]);
        }
        self.metrics
            .shards_held
            .set(&[], self.set.held().len() as f64);
        let letters = self.letters().await;
        Pass {
            gained,
            letters,
            wake,
        }
    }

    /// Takes or renews `shard`; true when held afterwards.
    async fn renew(&self, shard: u32) -> bool {
        match self.shards[shard as usize].try_acquire_or_renew().await {
            Ok(true) => {
                self.set.set_renewed(shard, Some(Instant::now()));
                true
            }
            Ok(false) => {
                if self.set.holds(shard) {
                    tracing::warn!(shard, "lost a shard Lease to another replica");
                }
                self.set.set_renewed(shard, None);
                false
            }
            // Kept until the renew deadline passes (checked by `holds`).
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }

    async fn letters(&self) -> Vec<Trigger> {
        let leader = self.leader.is_leader();
        let held = self.set.held();
        match self
            .mailbox
            .take(|address| match address {
                Address::Leader => leader,
                Address::Shard(i) => held.contains(&i),
            })
            .await
        {
            Ok(letters) => letters.into_iter().map(|(_, t)| t).collect(),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        }
    }

    /// Gives every shard and the membership back (shutdown), so the others
    /// take over at once instead of after 15 s.
    pub async fn release_all(&self) {
        for shard in self.set.held() {
            let _handing_back = self.set.hand_back(shard).await;
            if let Err(e) = self.shards[shard as usize].release().await {
                tracing::warn!("{e}");
            }
        }
        self.set.publish();
        self.metrics.shards_held.set(&[], 0.0);
        if let Err(e) = self.members.leave().await {
            tracing::warn!("{e}");
        }
    }

    /// Runs passes until `stop`; gained shards and letters go to `deliver`.
    pub fn spawn(
        self: Arc<Self>,
        deliver: impl Fn(BTreeSet<u32>, Vec<Trigger>) + Send + Sync + 'static,
    ) -> ShardHandle {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let manager = self.clone();
            let stop = stop.clone();
            async move {
                loop {
                    let pass =
                        tokio::time::timeout(manager.settings.renew_deadline, manager.pass());
                    let mut wake = None;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        done = pass => match done {
                            Ok(pass) => {
                                wake = pass.wake;
                                deliver(pass.gained, pass.letters);
                            }
                            Err(_) => tracing::warn!("a shard pass did not finish within the renew deadline"),
                        },
                    }
                    // Whatever could not be renewed in time is no longer held.
                    manager.set.publish();
                    let mut pause = manager
                        .settings
                        .retry_period
                        .mul_f64(1.0 + rand::random::<f64>() * 0.1);
                    // Wake just after another replica's Lease may expire, so
                    // its shards move one Lease duration after its last
                    // renewal rather than up to a retry period later.
                    if let Some(wake) = wake {
                        pause = pause.min(wake + EXPIRY_MARGIN);
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        });
        ShardHandle {
            manager: self,
            stop,
            task,
        }
    }
}

/// A running shard loop.
pub struct ShardHandle {
    manager: Arc<ShardManager>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ShardHandle {
    /// Shutdown: stop renewing and hand everything back.
    pub async fn stop_and_release(self) {
        self.stop.cancel();
        let _ = self.task.await;
        self.manager.release_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_valid_object_names() {
        assert_eq!(shard_lease_name(3), "relbot-shard-3");
        assert_eq!(
            member_lease_name("relbot-7d9f-x2"),
            "relbot-member-relbot-7d9f-x2"
        );
        assert_eq!(member_lease_name("Host_A-12"), "relbot-member-host-a-12");
        let long = member_lease_name(&"x".repeat(400));
        assert_eq!(long.len(), 253);
    }

    #[tokio::test]
    async fn a_hold_needs_a_fresh_renewal_and_blocks_the_hand_back() {
        let set = Arc::new(ShardSet::new(1, "me", Duration::from_millis(200)));
        assert!(set.hold("web").is_none(), "nothing held yet");
        set.set_renewed(0, Some(Instant::now()));
        assert_eq!(set.publish(), BTreeSet::from([0]));
        let hold = set.hold("web").expect("held");
        // The hand-back waits for the sync holding the shard.
        let handing = tokio::spawn({
            let set = set.clone();
            async move {
                let _guard = set.hand_back(0).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!handing.is_finished(), "handed back during a sync");
        drop(hold);
        handing.await.unwrap();
        assert!(set.hold("web").is_none(), "handed back");
        // A renewal older than the deadline does not count.
        set.set_renewed(0, Some(Instant::now() - Duration::from_millis(300)));
        assert!(set.hold("web").is_none(), "stale renewal");
        assert!(set.held().is_empty());
    }
}
