//! Webhook receivers as pure functions: who may send (signature), what the
//! configuration routes (routes), and the mapping from a GitHub or registry
//! event to [`Trigger`]s (github, registry). The HTTP layer ([`super::http`])
//! only moves bytes in and status codes out.
//!
//! Order matters for security: the GitHub signature is verified over the raw
//! body before anything in it is parsed, and a delivery id is remembered only
//! after its signature checked out (so unsigned requests cannot poison the
//! replay cache).

mod github;
mod registry;
mod routes;
mod signature;

pub use github::{PayloadError, PushCommit, PushEvent, PushRepository, route_github_event};
pub use registry::{RegistryPayloadError, route_registry_event};
pub use routes::{Routes, repository_from_url};
pub use signature::{
    DeliveryCache, GITHUB_SECRET_ENV, REGISTRY_TOKEN_ENV, Secret, SignatureError, github_signature,
    tokens_equal, verify_github_signature,
};

use super::trigger::Trigger;

/// How a delivery was handled; also the `verdict` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Produced triggers.
    Accepted,
    /// Understood, but nothing to do (another branch, a path no application owns…).
    Ignored,
    /// An event relbot does not handle.
    UnknownEvent,
    /// Seen this delivery id before.
    Duplicate,
    BadSignature,
    TooLarge,
    Malformed,
    /// A registry push for an image no policy watches.
    NoMatch,
    Pong,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Ignored => "ignored",
            Verdict::UnknownEvent => "unknown_event",
            Verdict::Duplicate => "duplicate",
            Verdict::BadSignature => "bad_signature",
            Verdict::TooLarge => "too_large",
            Verdict::Malformed => "malformed",
            Verdict::NoMatch => "no_match",
            Verdict::Pong => "pong",
        }
    }
}

/// Result of routing one parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub verdict: Verdict,
    pub triggers: Vec<Trigger>,
    /// Why, for the log line.
    pub note: String,
}

impl Routed {
    fn accepted(trigger: Trigger, note: impl Into<String>) -> Self {
        Routed {
            verdict: Verdict::Accepted,
            triggers: vec![trigger],
            note: note.into(),
        }
    }

    fn ignored(note: impl Into<String>) -> Self {
        Routed {
            verdict: Verdict::Ignored,
            triggers: Vec::new(),
            note: note.into(),
        }
    }

    fn no_match(note: impl Into<String>) -> Self {
        Routed {
            verdict: Verdict::NoMatch,
            triggers: Vec::new(),
            note: note.into(),
        }
    }
}
