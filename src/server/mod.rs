//! `relbot serve`: webhooks, schedules, the single-update guard, HTTP and metrics.

pub mod guard;
pub mod http;
pub mod metrics;
pub mod schedule;
pub mod webhook;
