//! `relbot validate`: configuration, policies and manifests, offline. Every
//! problem is listed (file:line, object, what is wrong) before exiting 2.

use std::path::Path;

use clap::Args;

use super::folder::{self, FolderArgs};
use super::{GlobalArgs, Outcome, OutputFormat, SourceArgs};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relbot validate --source manifests-sample\n  relbot validate --config cluster-config/relbot.yaml --output json\n\nExit code 0 when valid, 2 when any problem is an error (each printed as file:line)."
)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub folder: FolderArgs,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(global: &GlobalArgs, args: ValidateArgs) -> Outcome {
    let source = match folder::load(
        global,
        &args.source,
        &args.folder,
        "nothing was checked further.",
    ) {
        Ok(source) => source,
        Err(outcome) => return outcome,
    };
    // What the summary names: the relbot.yaml, or the plain folder.
    let path = if source.plain_folder {
        source.root.clone()
    } else {
        source.config.path.clone()
    };
    let (loaded, root) = (&source.config, &source.root);
    let (apps, problems) = match relbot::source::load_desired(root, &loaded.config) {
        Ok(apps) => {
            let notes: Vec<_> = apps.iter().flat_map(|a| a.notes.clone()).collect();
            (Some(apps), notes)
        }
        Err(e) => (None, e.problems),
    };
    let errors = problems.iter().filter(|p| p.is_error()).count();
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let report = serde_json::json!({
                "config": path,
                "valid": errors == 0,
                "applications": apps.as_ref().map(|a| a.iter().map(|app| serde_json::json!({
                    "name": app.name(), "objects": app.manifests.len()
                })).collect::<Vec<_>>()),
                "policies": loaded.policies.len(),
                "problems": problems,
            });
            print_structured(args.output, &report);
        }
        OutputFormat::Text => {
            for problem in &problems {
                eprintln!("{}", relative_to(root, problem));
            }
            if let Some(apps) = &apps {
                let objects: usize = apps.iter().map(|a| a.manifests.len()).sum();
                let policies = if source.plain_folder {
                    String::new()
                } else {
                    format!(", {}", count(loaded.policies.len(), "policy", "policies"))
                };
                println!(
                    "{}: valid ({}, {}{policies})",
                    path.display(),
                    count(apps.len(), "application", "applications"),
                    count(objects, "object", "objects"),
                );
            } else {
                eprintln!("{errors} error(s) found; nothing was changed.");
            }
        }
    }
    if errors == 0 {
        Outcome::Clean
    } else {
        Outcome::Failed
    }
}

/// `1 application`, `2 applications`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Problems name files relative to the source root; print them relative to
/// where the user stands so they can be opened directly.
fn relative_to(root: &Path, problem: &relbot::source::ValidationProblem) -> String {
    let mut shown = problem.clone();
    // From the repository root the path is already right; no `./` prefix.
    if root != Path::new(".") {
        shown.origin.file = root.join(&problem.origin.file);
    }
    shown.to_string()
}

pub(super) fn print_structured(format: OutputFormat, value: &serde_json::Value) {
    let text = match format {
        OutputFormat::Yaml => serde_saphyr::to_string(value).unwrap_or_default(),
        _ => serde_json::to_string_pretty(value).unwrap_or_default(),
    };
    println!("{text}");
}
