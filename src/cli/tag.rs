//! `relbot tag`: the next semver tag of a component from its commit messages.
//! The rules are in docs/tagging.md.

use std::path::PathBuf;

use clap::Args;
use relbot::release::tagger::{self, Bump, TagOptions};
use relbot::source::git::GitCredentials;

use super::{GlobalArgs, Outcome, OutputFormat};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relbot tag --prefix django-api- --path services/django-api --dry-run\n  relbot tag --prefix django-api- --path services/django-api --push origin"
)]
pub struct TagArgs {
    /// Repository to tag
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// Tag prefix of the component, e.g. django-api-
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Only commits touching this directory (relative to the repository root) count
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Print the tag that would be created; create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Push the new tag to this remote (token from RELBOT_GIT_TOKEN for http(s))
    #[arg(long, value_name = "REMOTE")]
    pub push: Option<String>,
    /// Bump for commit messages that are not Conventional Commits
    #[arg(long, default_value = "none", value_parser = ["none", "patch", "minor", "major"])]
    pub default_bump: String,
    /// Version of the first tag
    #[arg(long, default_value = "0.1.0", value_name = "VERSION")]
    pub initial_version: semver::Version,
    /// Below 1.0.0, let a breaking change bump major (default: minor)
    #[arg(long)]
    pub breaking_major: bool,
    /// Tagger identity, "Name <email>" [default: the repository's user.name/user.email]
    #[arg(long, value_name = "NAME <EMAIL>")]
    pub tagger: Option<String>,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(_global: &GlobalArgs, args: TagArgs) -> Outcome {
    let tagger = match args.tagger.as_deref().map(parse_identity).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --tagger: {e}");
            return Outcome::Failed;
        }
    };
    let options = TagOptions {
        prefix: args.prefix,
        path: args.path,
        initial_version: args.initial_version,
        breaking_bumps_major_before_1: args.breaking_major,
        default_bump: args.default_bump.parse::<Bump>().unwrap_or_default(),
        dry_run: args.dry_run,
        push: args.push,
        tagger,
        credentials: GitCredentials::from_env(),
    };
    let outcome = match tagger::tag(&args.repo, &options) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Failed;
        }
    };
    let next = outcome.plan.next.as_ref().map(|n| n.name.clone());
    match args.output {
        OutputFormat::Text => {
            println!("{}", outcome.plan.summary());
            match (&outcome.created, &next) {
                (Some(created), _) => println!(
                    "created tag {} at {}",
                    created.name,
                    &created.commit[..12.min(created.commit.len())]
                ),
                (None, Some(name)) => println!("would create tag {name} (dry run)"),
                (None, None) => {}
            }
        }
        format => super::validate::print_structured(
            format,
            &serde_json::json!({
                "previous": outcome.plan.previous.as_ref().map(|p| &p.name),
                "next": next,
                "bump": outcome.plan.bump.to_string(),
                "created": outcome.created.is_some(),
                "dryRun": args.dry_run,
            }),
        ),
    }
    Outcome::Clean
}

/// `Name <email>` → (name, email).
fn parse_identity(text: &str) -> Result<(String, String), String> {
    let (name, rest) = text.split_once('<').ok_or("expected \"Name <email>\"")?;
    let email = rest.strip_suffix('>').ok_or("expected \"Name <email>\"")?;
    Ok((name.trim().to_string(), email.trim().to_string()))
}
