//! Clock skew: how far the local clock is from the peers relbot talks to,
//! read from the `Date` header of their answers (API server, registry,
//! GitHub).
//!
//! Why: relbot runs on small nodes (a Raspberry Pi has no hardware clock; one
//! off for weeks boots a month late until NTP catches up). A wrong clock
//! shows up far from its cause: tokens refused as expired or not yet valid,
//! GitHub App JWTs refused for their `iat`/`exp`, "Degraded for 30 days". So
//! every answer's `Date` is compared with the local time, a skew beyond
//! [`SKEW_WARNING`] is logged once per peer with the figure, exported as
//! `relbot_clock_skew_seconds{peer}` and shown on the status page, and a
//! refusal for timing reasons names the clock as the likely cause.
//!
//! A `Date` header has whole seconds and the answer took some time to
//! arrive, so a figure is good to a second or two: plenty for a 30 s bar.
//!
//! The observations live in one process-wide book ([`book`]): the three
//! clients are built in many places, and what they observe is a fact about
//! this machine, not about one of them.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// Beyond this the skew is worth a warning (and a token's validity window
/// may no longer cover "now" on both sides).
pub const SKEW_WARNING: Duration = Duration::from_secs(30);

/// A peer whose clock relbot compares with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    ApiServer,
    Registry,
    GitHub,
}

impl Peer {
    /// The metric label and the word on the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::ApiServer => "apiserver",
            Peer::Registry => "registry",
            Peer::GitHub => "github",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Peer::ApiServer => "the Kubernetes API server",
            Peer::Registry => "the image registry",
            Peer::GitHub => "GitHub",
        }
    }
}

/// The last comparison with one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Skew {
    pub peer: Peer,
    /// Local time minus the peer's: positive when the local clock is ahead.
    pub seconds: f64,
}

impl Skew {
    pub fn beyond_warning(&self) -> bool {
        self.seconds.abs() > SKEW_WARNING.as_secs_f64()
    }

    /// "the local clock is 2700 s behind GitHub's".
    pub fn sentence(&self) -> String {
        let side = if self.seconds >= 0.0 {
            "ahead of"
        } else {
            "behind"
        };
        format!(
            "the local clock is {:.0} s {side} {}'s",
            self.seconds.abs(),
            self.peer.described()
        )
    }
}

#[derive(Debug, Default)]
struct Entry {
    seconds: f64,
    /// Warned for the current stretch beyond the bar; cleared when the skew
    /// comes back under it, so a later drift warns again.
    warned: bool,
}

/// Observed skews, one per peer.
#[derive(Debug, Default)]
pub struct SkewBook {
    peers: Mutex<BTreeMap<Peer, Entry>>,
}

impl SkewBook {
    /// Records the peer's `Date` (if the answer has a readable one) against
    /// the local time `now`; returns the skew.
    pub fn observe_headers(
        &self,
        peer: Peer,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Skew> {
        let date = headers.get(http::header::DATE)?.to_str().ok()?;
        let theirs = httpdate::parse_http_date(date).ok()?;
        Some(self.observe(peer, theirs, now))
    }

    pub fn observe(&self, peer: Peer, theirs: SystemTime, now: SystemTime) -> Skew {
        let seconds = match now.duration_since(theirs) {
            Ok(ahead) => ahead.as_secs_f64(),
            Err(behind) => -behind.duration().as_secs_f64(),
        };
        let skew = Skew { peer, seconds };
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = peers.entry(peer).or_default();
        entry.seconds = seconds;
        if skew.beyond_warning() {
            if !entry.warned {
                entry.warned = true;
                tracing::warn!(
                    peer = peer.as_str(),
                    skew_seconds = seconds.round() as i64,
                    "{}; tokens and signatures with a validity time may be refused and health ages are off: set this node's time (NTP)",
                    skew.sentence()
                );
            }
        } else {
            entry.warned = false;
        }
        skew
    }

    pub fn skew(&self, peer: Peer) -> Option<Skew> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.get(&peer).map(|e| Skew {
            peer,
            seconds: e.seconds,
        })
    }

    /// Every peer seen so far.
    pub fn skews(&self) -> Vec<Skew> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers
            .iter()
            .map(|(peer, e)| Skew {
                peer: *peer,
                seconds: e.seconds,
            })
            .collect()
    }

    /// For a refused credential (HTTP 401, a rejected JWT): a sentence naming
    /// the clock as the likely cause when the refusal is about time or the
    /// skew with that peer is beyond the bar; None otherwise.
    pub fn refusal_hint(&self, peer: Peer, status: u16, message: &str) -> Option<String> {
        let skew = self.skew(peer).filter(Skew::beyond_warning);
        let about_time = mentions_time(message);
        match skew {
            Some(skew) if status == 401 || about_time => Some(format!(
                "{}: a token or signature judged by its validity time is the likely cause of this refusal; set this node's time (NTP)",
                skew.sentence()
            )),
            None if about_time => Some(
                "the refusal is about a validity time (expired, not yet valid or issued in the future): this node's clock is the likely cause; check it against NTP".to_string(),
            ),
            _ => None,
        }
    }
}

/// Words with which servers refuse a credential for its validity time
/// (JWT `exp`/`nbf`/`iat`, "token is expired", GitHub's "'Expiration time'
/// claim … is too far in the future").
fn mentions_time(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "expired",
        "not yet valid",
        "expiration time",
        "issued at",
        "'exp'",
        "'iat'",
        "'nbf'",
        "\"exp\"",
        "\"nbf\"",
        "\"iat\"",
        "in the future",
        "clock skew",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

static BOOK: LazyLock<SkewBook> = LazyLock::new(SkewBook::default);

/// The process-wide book every client writes to.
pub fn book() -> &'static SkewBook {
    &BOOK
}

/// Records a peer's answer in the process-wide book.
pub fn observe(peer: Peer, headers: &HeaderMap) {
    book().observe_headers(peer, headers, SystemTime::now());
}

/// [`SkewBook::refusal_hint`] on the process-wide book.
pub fn refusal_hint(peer: Peer, status: u16, message: &str) -> Option<String> {
    book().refusal_hint(peer, status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(date: SystemTime) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::DATE,
            httpdate::fmt_http_date(date).parse().unwrap(),
        );
        h
    }

    #[test]
    fn the_skew_is_local_minus_the_peers_date() {
        let book = SkewBook::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let behind = book
            .observe_headers(Peer::GitHub, &headers(now + Duration::from_secs(2700)), now)
            .unwrap();
        assert_eq!(behind.seconds, -2700.0);
        assert!(behind.beyond_warning());
        assert_eq!(
            behind.sentence(),
            "the local clock is 2700 s behind GitHub's"
        );
        let close = book
            .observe_headers(Peer::Registry, &headers(now - Duration::from_secs(3)), now)
            .unwrap();
        assert_eq!(close.seconds, 3.0);
        assert!(!close.beyond_warning());
        assert_eq!(
            book.skews().iter().map(|s| s.peer).collect::<Vec<_>>(),
            vec![Peer::Registry, Peer::GitHub]
        );
        // No Date, or an unreadable one: nothing recorded.
        assert!(
            book.observe_headers(Peer::ApiServer, &HeaderMap::new(), now)
                .is_none()
        );
        let mut bad = HeaderMap::new();
        bad.insert(http::header::DATE, "yesterday".parse().unwrap());
        assert!(book.observe_headers(Peer::ApiServer, &bad, now).is_none());
        assert!(book.skew(Peer::ApiServer).is_none());
    }

    #[test]
    fn the_warning_is_given_once_per_stretch_beyond_the_bar() {
        let book = SkewBook::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let late = now - Duration::from_secs(90);
        book.observe(Peer::ApiServer, late, now);
        assert!(book.peers.lock().unwrap()[&Peer::ApiServer].warned);
        book.observe(Peer::ApiServer, now, now);
        assert!(!book.peers.lock().unwrap()[&Peer::ApiServer].warned);
    }

    #[test]
    fn a_refusal_names_the_clock_when_time_is_the_likely_cause() {
        let book = SkewBook::default();
        let now = SystemTime::now();
        // Nothing known, nothing about time: no hint.
        assert_eq!(
            book.refusal_hint(Peer::GitHub, 401, "Bad credentials"),
            None
        );
        // A JWT refused for its claims: the clock, even before a Date was seen.
        let jwt = book
            .refusal_hint(
                Peer::GitHub,
                401,
                "'Expiration time' claim ('exp') is too far in the future",
            )
            .unwrap();
        assert!(jwt.contains("clock is the likely cause"), "{jwt}");
        // A plain 401 from a peer whose clock is far off: the figure.
        book.observe(Peer::Registry, now + Duration::from_secs(600), now);
        let plain = book
            .refusal_hint(Peer::Registry, 401, "unauthorized")
            .unwrap();
        assert!(
            plain.starts_with("the local clock is 600 s behind the image registry's"),
            "{plain}"
        );
        // A refusal that is not about credentials is not blamed on the clock.
        assert_eq!(book.refusal_hint(Peer::Registry, 404, "not found"), None);
    }
}
