//! The reconciler: plan, diff, apply, prune and report one application run.

pub mod apply;
pub mod change_set;
pub mod crd_schema;
pub mod diff;
pub mod engine;
pub mod fleet;
mod gate;
pub mod hook_run;
pub mod hooks;
pub mod inventory;
pub mod live_plan;
pub mod plan;
pub mod plan_report;
pub mod problem;
pub mod result;
pub mod settings;
pub mod status;
mod unvouched;
mod write;
