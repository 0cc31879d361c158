//! Which application belongs to which shard, and how many shards one replica
//! may hold: pure functions, so the rules are pinned without a cluster.

use std::collections::BTreeSet;

/// The shard of `application` among `shards`: FNV-1a (64 bit) of the name.
/// Every replica, build and platform must agree on it, so Rust's randomised
/// `DefaultHasher` is not an option; FNV is tiny, stable and spreads short
/// names well enough for a modulo.
pub fn shard_of(application: &str, shards: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = application
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(shards.max(1))) as u32
}

/// Shards one replica may hold while `members` replicas are alive:
/// `ceil(shards / members)`, so together they can hold every shard and no
/// replica hoards more than its share.
pub fn cap(shards: u32, members: usize) -> usize {
    let members = members.max(1);
    (shards as usize).div_ceil(members)
}

/// What one pass of the shard loop does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Held shards to renew.
    pub keep: Vec<u32>,
    /// Held shards beyond the cap, handed back so a newer replica gets its share.
    pub release: Vec<u32>,
    /// Shards to try, in this order, until `cap` are held (a try only takes
    /// a shard whose Lease is absent, released or expired).
    pub probe: Vec<u32>,
    pub cap: usize,
}

/// The pass for a replica holding `held` with `members` replicas alive.
/// `start` rotates the probe order (from the replica's identity) so
/// replicas starting together do not all race for shard 0 first.
pub fn plan(shards: u32, held: &BTreeSet<u32>, members: usize, start: u32) -> Plan {
    let cap = cap(shards, members);
    let mut keep: Vec<u32> = held.iter().copied().filter(|s| *s < shards).collect();
    // Shards beyond the configured count (it shrank) are always handed back.
    let mut release: Vec<u32> = held.iter().copied().filter(|s| *s >= shards).collect();
    while keep.len() > cap {
        // The highest-numbered go, so the choice is the same on every pass.
        release.push(keep.pop().expect("longer than cap"));
    }
    let probe = if keep.len() < cap {
        (0..shards)
            .map(|i| (i + start) % shards.max(1))
            .filter(|s| !held.contains(s))
            .collect()
    } else {
        Vec::new()
    };
    Plan {
        keep,
        release,
        probe,
        cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_of_a_name_is_stable_and_spread() {
        // Pinned values: changing the hash would move every application.
        assert_eq!(shard_of("web", 8), shard_of("web", 8));
        assert_eq!(shard_of("", 4), (0xcbf2_9ce4_8422_2325u64 % 4) as u32);
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(shard_of("anything", 0), 0, "no shards means one");
        let mut counts = [0usize; 3];
        for i in 0..300 {
            counts[shard_of(&format!("app-{i:03}"), 3) as usize] += 1;
        }
        for count in counts {
            assert!((70..=130).contains(&count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn the_cap_is_the_ceiling_of_shards_per_member() {
        assert_eq!(cap(8, 3), 3);
        assert_eq!(cap(9, 3), 3);
        assert_eq!(cap(3, 3), 1);
        assert_eq!(cap(2, 3), 1);
        assert_eq!(cap(8, 0), 8, "alone before its member Lease is seen");
    }

    #[test]
    fn a_lone_replica_probes_every_shard_from_its_start() {
        let p = plan(4, &BTreeSet::new(), 1, 2);
        assert_eq!(p.probe, vec![2, 3, 0, 1]);
        assert!(p.keep.is_empty() && p.release.is_empty());
        assert_eq!(p.cap, 4);
    }

    #[test]
    fn a_replica_over_its_share_hands_back_the_highest_shards() {
        let held: BTreeSet<u32> = (0..8).collect();
        let p = plan(8, &held, 3, 0);
        assert_eq!(p.keep, vec![0, 1, 2]);
        assert_eq!(p.release, vec![7, 6, 5, 4, 3]);
        assert!(p.probe.is_empty());
    }

    #[test]
    fn a_replica_at_its_share_only_renews() {
        let held: BTreeSet<u32> = [1, 5, 6].into();
        let p = plan(8, &held, 3, 0);
        assert_eq!(p.keep, vec![1, 5, 6]);
        assert!(p.release.is_empty() && p.probe.is_empty());
    }

    #[test]
    fn when_a_member_dies_the_survivors_may_take_more() {
        let held: BTreeSet<u32> = [0, 1, 2].into();
        let p = plan(8, &held, 2, 0);
        assert_eq!(p.cap, 4);
        assert_eq!(p.probe, vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn shards_beyond_a_smaller_count_are_released() {
        let held: BTreeSet<u32> = [0, 6].into();
        let p = plan(4, &held, 1, 0);
        assert_eq!(p.keep, vec![0]);
        assert_eq!(p.release, vec![6]);
        assert_eq!(p.probe, vec![1, 2, 3]);
    }
}
