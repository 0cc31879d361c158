//! `relbot validate`: configuration, policies and manifests, offline.

use clap::Args;

use super::{GlobalArgs, Outcome, SourceArgs};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(global: &GlobalArgs, args: ValidateArgs) -> Outcome {
    let path = args.source.config_path(global);
    match relbot::config::load(&path) {
        Ok(loaded) => {
            println!(
                "{}: valid ({} applications, {} policies)",
                path.display(),
                loaded.config.applications.len(),
                loaded.policies.len()
            );
            Outcome::Clean
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{} problem(s) found; nothing was changed.",
                e.problems.len()
            );
            Outcome::Failed
        }
    }
}
