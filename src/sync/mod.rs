//! The reconciler: plan, diff, apply, prune and report one application run.

pub mod apply;
pub mod diff;
pub mod engine;
pub mod inventory;
pub mod order;
pub mod plan;
pub mod planner;
pub mod report;
pub mod result;
pub mod settings;
pub mod status;
