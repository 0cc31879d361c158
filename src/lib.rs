//! relbot: one service that keeps a Kubernetes cluster equal to a git
//! repository (the reconciler) and keeps that repository's image versions
//! current (the release bot), with one update queue between them.
//!
//! Data flows one way: source → render → plan → apply → report. Modules
//! depend downwards only: `server` → (`sync`, `release`) → `source` →
//! (`cluster`, `config`, `manifest`). See `docs/architecture.md`.

pub mod clock;
pub mod cluster;
pub mod config;
pub mod dns_name;
pub mod error_chain;
pub mod image;
pub mod manifest;
pub mod progress;
pub mod redact;
pub mod release;
pub mod revision;
pub mod server;
pub mod source;
pub mod sync;
pub mod tls;
pub mod yaml_message;
