//! The live side: discovery, a small client over dynamic objects (with a
//! read-only variant for dry-runs), and per-kind health.

pub mod client;
pub mod destination;
pub mod discovery;
pub mod fields;
pub mod health;
pub mod kube_error;
mod list_page;
