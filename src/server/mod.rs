//! `relbot serve`: webhooks, schedules, the update queue, HTTP and metrics.
//!
//! The pieces are independent of the reconciler and the bump engine: work is
//! described by [`Trigger`]s, merged into [`Work`] by the [`UpdateQueue`], and
//! executed by whatever implements [`Executor`].

pub mod announce;
pub mod api;
pub mod app;
pub mod bump;
pub mod commit_status;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod observed;
pub mod page;
pub mod page_routes;
pub mod queue;
pub mod reconciler;
pub mod reload;
pub mod rollout_watch;
pub mod schedule;
pub mod shard;
pub mod shutdown;
pub mod status_page;
pub mod trigger;
pub mod webhook;

pub use metrics::Metrics;
pub use queue::{Executor, LeaderState, RunContext, RunError, UpdateQueue};
pub use trigger::{AppSelector, PolicySelector, PrSelector, Selector, SyncRequest, Trigger, Work};

#[cfg(test)]
mod fixture;
