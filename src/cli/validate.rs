//! `relbot validate`: configuration, policies and manifests, offline. Every
//! problem is listed (file:line, object, what is wrong) before exiting 2.

use std::path::Path;

use clap::Args;

use super::{GlobalArgs, Outcome, OutputFormat, SourceArgs};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relbot validate --source manifests-sample\n  relbot validate --config cluster-config/relbot.yaml --output json\n\nExit code 0 when valid, 2 when any problem is an error (each printed as file:line)."
)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub fn run(global: &GlobalArgs, args: ValidateArgs) -> Outcome {
    let path = args.source.config_path(global);
    let loaded = match super::load_config(global, &args.source, "nothing was checked further.") {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    // Application paths are relative to the repository root: the --source
    // directory, else the directory holding relbot.yaml.
    let root = args
        .source
        .source
        .clone()
        .unwrap_or_else(|| loaded.base_dir().to_path_buf());
    let (apps, problems) = match relbot::source::load_desired(&root, &loaded.config) {
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
                    "name": app.name, "objects": app.manifests.len()
                })).collect::<Vec<_>>()),
                "policies": loaded.policies.len(),
                "problems": problems,
            });
            print_structured(args.output, &report);
        }
        OutputFormat::Text => {
            for problem in &problems {
                eprintln!("{}", relative_to(&root, problem));
            }
            if let Some(apps) = &apps {
                let objects: usize = apps.iter().map(|a| a.manifests.len()).sum();
                println!(
                    "{}: valid ({} applications, {objects} objects, {} policies)",
                    path.display(),
                    apps.len(),
                    loaded.policies.len()
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

/// Problems name files relative to the source root; print them relative to
/// where the user stands so they can be opened directly.
fn relative_to(root: &Path, problem: &relbot::source::ValidationProblem) -> String {
    let mut shown = problem.clone();
    shown.origin.file = root.join(&problem.origin.file);
    shown.to_string()
}

pub(super) fn print_structured(format: OutputFormat, value: &serde_json::Value) {
    let text = match format {
        OutputFormat::Yaml => serde_saphyr::to_string(value).unwrap_or_default(),
        _ => serde_json::to_string_pretty(value).unwrap_or_default(),
    };
    println!("{text}");
}
