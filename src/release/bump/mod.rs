//! The bumper: registry tags → image policy → file edits → branch → pull
//! request → auto-merge, one policy at a time.
//!
//! - [`plan_bumps`] is `relbot bump --dry-run`: for each policy it lists the
//!   files its `files` globs match, finds the references to its image, reads
//!   the tags in use, asks the registry for the image's tags (one shared
//!   [`RegistryClient`], so tokens and ETags are reused across policies),
//!   picks the newest allowed tag for each reference (never a downgrade) and
//!   computes byte-span edits. Nothing is written anywhere.
//! - [`run_bumps`] publishes each plan: a branch `relbot/<policy>` made of one
//!   commit on the base branch's head, force-pushed; one pull request per
//!   policy, created or updated in place; others superseded; a PR a person
//!   closed stays closed; auto-merge requested unless the policy's
//!   application is Degraded. A run with nothing new writes nothing: the
//!   branch is pushed only when its tree or parent would change, the PR is
//!   edited only when its title or body would change.
//!
//! Each step has its own file: [`plan`] (what to change), [`workspace`]
//! (the git working clone), [`pull`] (PR text and GitHub calls),
//! [`summary`] (what the change does to the application's objects),
//! [`health`] (the merge gate's input), [`rollback`] (reverting a bump that
//! broke its application, and holding the policy after), [`run`] (the whole
//! run) and [`report`] (what it is told and what it reports).

mod error;
pub mod health;
pub mod plan;
pub mod publisher;
pub mod pull;
pub mod report;
pub mod rollback;
pub mod run;
pub mod summary;
pub mod workspace;

pub use error::BumpError;
pub use health::{
    AppObservation, HealthSource, NoHealth, StaticHealth, UnhealthyObject, blocks_merge,
};
pub use plan::{
    BumpFile, BumpLine, BumpPlan, HeldTag, PolicyScan, plan_bumps, plan_policy,
    plan_policy_observed, plan_revert,
};
pub use publisher::{Publisher, PublisherError};
pub use report::{BumpOptions, BumpReport, MergeState, PolicyOutcome, PolicyReport, RequestCounts};
pub use rollback::{Revert, RollbackDecision};
pub use run::run_bumps;
pub use workspace::Workspace;

#[cfg(doc)]
use crate::release::registry::RegistryClient;
