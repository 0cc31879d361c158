//! OCI distribution v2 client: the tags of an image and a tag's manifest
//! digest, nothing more (no pulls, no pushes).
//!
//! - `GET /v2/<name>/tags/list?n=` following `Link: <…>; rel="next"` only
//!   within the same origin, at most `max_pages` pages;
//! - anonymous, basic and bearer-token auth learned from the
//!   `WWW-Authenticate` challenge; tokens cached until `expires_in`, and once
//!   a host's scheme is known we authenticate up front (one request per page);
//! - 429 and 5xx: bounded retries honouring `Retry-After` (seconds or date),
//!   otherwise exponential backoff with jitter; a host that asked us to wait
//!   is not contacted again before that time, by any call;
//! - ETag/`If-None-Match` per page: an unchanged list costs a 304 per page;
//! - manifest digests by `HEAD` (which Docker Hub does not count as a pull);
//! - loopback registries over plain HTTP (as docker does), every other host
//!   over HTTPS unless configured `insecure`; mirrors per host.
//!
//! `client.rs` sends every request; `tags.rs` and `manifest.rs` are what it
//! asks for; `auth.rs` the token flow, filling the client's `token.rs` state;
//! `credentials.rs` who we are per host; `settings.rs` where hosts are
//! reached; `error.rs`, `stats.rs`, `backoff.rs`, `pagination.rs`.

pub mod auth;
pub mod backoff;
pub mod client;
pub mod credentials;
pub mod error;
pub mod manifest;
pub mod pagination;
pub mod settings;
pub mod stats;
pub mod tags;
pub mod token;

pub use crate::image::{
    ImageRef, ReferenceError, SplitReference, same_repository, split_reference,
};
pub use backoff::RetryPolicy;
pub use client::RegistryClient;
pub use credentials::{Credential, CredentialsError, RegistryCredentials};
pub use error::RegistryError;
pub use manifest::MANIFEST_MEDIA_TYPES;
pub use settings::RegistrySettings;
pub use stats::{RegistryStats, StatsSnapshot};
