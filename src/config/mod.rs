//! `relbot.yaml` and `policies/*.yaml`: typed configuration with defaults,
//! validated at load time with errors that name file, line, column and field.
//!
//! Credentials never live here: tokens, keys and webhook secrets come from the
//! environment or mounted Secrets (see `docs/configuration.md`).

mod cron;
mod duration;
mod error;
mod health;
mod load;
mod range;
mod types;

pub use cron::CronSchedule;
pub use duration::ConfigDuration;
pub use error::{ConfigError, ConfigProblem};
pub use health::{HealthRule, HealthTest, RuleHealth};
pub use load::{LoadedConfig, LoadedPolicy, config_dir, for_folder, load, load_policies};
pub use range::VersionRange;
pub use types::*;
