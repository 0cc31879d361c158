//! `relbot sync`, `relbot diff`, `relbot status`: load the configuration,
//! render each selected application from the source, then hand over to the
//! reconciler's engine (the same functions `relbot serve` calls).

use clap::Args;
use relbot::cluster::client::{ClusterTarget, ReadOnlyCluster, locate};
use relbot::cluster::destination::Destinations;
use relbot::config::{ConfigDuration, LoadedConfig};
use relbot::progress::ProgressEvent;
use relbot::source::DesiredApplication;
use relbot::sync::change_set::ChangeSet;
use relbot::sync::engine::{self, ResourceManager};
use relbot::sync::fleet::Fleet;
use relbot::sync::plan::Plan;
use relbot::sync::plan_report::{Style, render_plans};
use relbot::sync::result::{SyncResult, render_result};
use relbot::sync::settings::{RunSettings, SyncSettings};
use relbot::sync::status;
use serde::Serialize;

use super::checkout;
use super::document::{PlanDocument, ResultDocument};
use super::exit_code::{plans_exit_code, results_exit_code};
use super::first_sync;
use super::folder::{self, FolderArgs};
use super::progress::{around_output, finish};
use super::{GlobalArgs, Outcome, OutputFormat, SourceArgs, use_color};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub folder: FolderArgs,
    /// Show what would change; never write to the cluster
    #[arg(long)]
    pub dry_run: bool,
    /// Only this application (repeatable)
    #[arg(long = "app", value_name = "NAME")]
    pub apps: Vec<String>,
    /// Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, in-cluster]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Also wait for the last wave to become healthy (earlier waves always gate the next)
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits [default: each application's sync.healthTimeout]
    #[arg(long, value_name = "DURATION", value_parser = ConfigDuration::parse, requires = "wait")]
    pub timeout: Option<ConfigDuration>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Query a running `relbot serve` at this URL instead of the cluster
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Kubeconfig file [default: $KUBECONFIG, ~/.kube/config, in-cluster]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context
    #[arg(long)]
    pub context: Option<String>,
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The CLI's runtime: one thread. The API server is what a sync waits on,
/// and relbot's own share (encoding bodies, reading answers) is a fraction
/// of one core. On one thread no request crosses threads to be sent or
/// answered; against a real API server that took a third off relbot's CPU
/// time for the same sync, and the sync was no slower.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn outcome_of(code: u8) -> Outcome {
    match code {
        0 => Outcome::Clean,
        1 => Outcome::Changes,
        _ => Outcome::Failed,
    }
}

fn fail(message: impl std::fmt::Display) -> Outcome {
    say(format_args!("error: {message}"));
    Outcome::Failed
}

/// A line on stderr that never lands on the progress line.
fn say(message: impl std::fmt::Display) {
    around_output(|| eprintln!("{message}"));
}

/// Loaded configuration, the source root and revision, and the rendered
/// applications that were asked for.
struct Desired {
    config: LoadedConfig,
    /// Read from a plain folder: always "never synced", and never synced by
    /// `relbot sync` as it is, so no first-sync notice.
    plain_folder: bool,
    revision: Option<String>,
    applications: Vec<DesiredApplication>,
}

fn load_desired(global: &GlobalArgs, args: &SyncArgs) -> Result<Desired, Outcome> {
    let source = folder::load(global, &args.source, &args.folder, "nothing was changed.")?;
    if source.plain_folder && !args.dry_run {
        return Err(fail(unsynced_folder(&source)));
    }
    let described = source.described();
    let folder::Source {
        config,
        root,
        plain_folder,
    } = source;
    for name in &args.apps {
        if config.application(name).is_none() {
            let known: Vec<&str> = config
                .config
                .applications
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            return Err(fail(format!(
                "no application named {name:?} in {described} (known: {})",
                known.join(", ")
            )));
        }
    }
    let revision = checkout::ask_revision(&root);
    let rendered = match relbot::source::load_desired(&root, &config.config) {
        Ok(rendered) => rendered,
        Err(e) => {
            say(e);
            return Err(Outcome::Failed);
        }
    };
    let mut applications = Vec::new();
    for desired in rendered {
        if !args.apps.is_empty() && !args.apps.iter().any(|a| a == desired.name()) {
            continue;
        }
        for note in &desired.notes {
            tracing::debug!(application = %desired.name(), "{note}");
        }
        applications.push(desired);
    }
    Ok(Desired {
        revision: revision.answer(),
        plain_folder,
        config,
        applications,
    })
}

/// Why a real sync refuses a plain folder, and the two ways forward. The
/// application's name is what marks the objects relbot owns and may later
/// prune, so it is not guessed from a folder name for a write.
fn unsynced_folder(source: &folder::Source) -> String {
    let app = &source.config.config.applications[0];
    let dir = source.root.display();
    format!(
        "{dir} has no relbot.yaml, and `relbot sync` writes only applications a relbot.yaml names (the name marks what relbot owns and may prune later); nothing was changed.\n\
         hint: preview with `relbot sync --dry-run --source {dir}`, or create {}:\n\
         \x20 applications:\n\
         \x20   - name: {}\n\
         \x20     path: .\n\
         \x20     namespace: {}",
        source.root.join("relbot.yaml").display(),
        app.name,
        app.namespace.as_deref().unwrap_or("default"),
    )
}

fn print_document<T: Serialize>(format: OutputFormat, value: &T) {
    match format {
        OutputFormat::Yaml => match serde_saphyr::to_string(value) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("error: cannot render YAML: {e}"),
        },
        _ => match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot render JSON: {e}"),
        },
    }
}

fn target(args: &SyncArgs) -> ClusterTarget {
    ClusterTarget {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    }
}

/// What `sync`, `sync --dry-run` and `diff` share before they reach the
/// cluster: the progress line, the rendered applications, run settings.
struct Prepared {
    desired: Desired,
    settings: RunSettings,
    style: Style,
    shown: Option<super::progress::Shown>,
}

fn prepare(global: &GlobalArgs, args: &SyncArgs) -> Result<Prepared, Outcome> {
    let (progress, shown) = super::progress::start(global);
    progress.emit(|| ProgressEvent::Rendering);
    let desired = load_desired(global, args)?;
    let mut settings = RunSettings::from_config(&desired.config.config);
    settings.progress = progress;
    settings.wait_for_last_wave = args.wait;
    let style = Style {
        color: args.output == OutputFormat::Text && use_color(global),
    };
    Ok(Prepared {
        desired,
        settings,
        style,
        shown,
    })
}

/// Renders (on a helper thread) while `connect` reaches the cluster: each
/// takes tens of milliseconds and neither needs the other. A render that
/// fails is reported as it fails, whatever the cluster is doing, and the
/// cluster's answer is then dropped unread.
fn prepare_while<T>(
    global: &GlobalArgs,
    args: &SyncArgs,
    runtime: &tokio::runtime::Runtime,
    connect: impl Future<Output = T>,
) -> Result<(Prepared, T), Outcome> {
    std::thread::scope(|scope| {
        let (done, mut rendered) = tokio::sync::oneshot::channel();
        scope.spawn(move || {
            let _ = done.send(prepare(global, args));
        });
        runtime.block_on(async {
            let mut connect = std::pin::pin!(connect);
            let connected = tokio::select! {
                prepared = &mut rendered => {
                    let prepared = prepared.expect("the render thread answers")?;
                    return Ok((prepared, connect.await));
                }
                connected = &mut connect => connected,
            };
            let prepared = rendered.await.expect("the render thread answers")?;
            Ok((prepared, connected))
        })
    })
}

pub fn run_sync(global: &GlobalArgs, args: SyncArgs) -> Outcome {
    if args.dry_run {
        return run_plan(global, &args);
    }
    let runtime = runtime();
    let cluster = target(&args);
    let connect = engine::connect_for_sync(&cluster);
    let (prepared, connected) = match prepare_while(global, &args, &runtime, connect) {
        Ok(both) => both,
        Err(outcome) => return outcome,
    };
    let Prepared {
        desired,
        settings,
        style,
        shown,
    } = prepared;
    runtime.block_on(async {
        let manager = match connected {
            Ok(m) => m,
            Err(e) => {
                return fail(format!(
                    "{e}; nothing was changed (use --dry-run to plan without a cluster)"
                ));
            }
        };
        let server = manager.server().unwrap_or_default().to_string();
        let Some(home) = manager.writable_cluster().cloned() else {
            return fail("the cluster cannot be written to; nothing was changed");
        };
        // Applications with a destination sync into it; records stay here.
        let destinations = Destinations::new(home.read_only().clone());
        let mut fleet = Fleet::writable(&manager, home, &destinations);
        let mut changes = Vec::with_capacity(desired.applications.len());
        for wanted in desired.applications {
            let settings = SyncSettings::new(&wanted.app, &settings);
            let revision = desired.revision.as_deref();
            let manager = match fleet.manager_or_refusal(&wanted, revision, &settings).await {
                Ok(manager) => manager,
                Err(refused) => {
                    changes.push(refused);
                    continue;
                }
            };
            let staged = manager.plan(wanted, revision, &settings).await;
            // Read from the status record the plan read: no request of its own.
            if staged.never_synced() {
                say(first_sync::before_sync(
                    &[staged.application().name.clone()],
                    &server,
                    &settings.status_namespace,
                ));
            }
            let mut run = manager.apply(staged, &settings).await;
            if args.wait {
                let timeout = args.timeout.map_or(settings.health_timeout, |t| t.0);
                manager.wait(&mut run, timeout).await;
            }
            manager.prune(&mut run).await;
            changes.push(manager.finish(run).await);
        }
        let results: Vec<SyncResult> = changes
            .into_iter()
            .filter_map(ChangeSet::into_result)
            .collect();
        finish(shown);
        match args.output {
            OutputFormat::Text => {
                for result in &results {
                    print!("{}", render_result(result, style, global.verbose > 0));
                }
            }
            format => print_document(format, &ResultDocument::new(&results)),
        }
        outcome_of(results_exit_code(&results))
    })
}

pub fn run_diff(global: &GlobalArgs, mut args: DiffArgs) -> Outcome {
    // A diff never writes, whatever flags came with it.
    args.sync.dry_run = true;
    run_plan(global, &args.sync)
}

/// `sync --dry-run` and `diff`: plan only, through a handle that cannot write.
fn run_plan(global: &GlobalArgs, args: &SyncArgs) -> Outcome {
    let runtime = runtime();
    let connect = async {
        let plan_target = engine::open_for_plan(&target(args)).await?;
        if let engine::PlanTarget::Offline { reason } = &plan_target {
            tracing::info!(%reason, "planning offline");
        }
        let destinations = match &plan_target {
            engine::PlanTarget::Live(cluster) => Some(Destinations::new(cluster.clone())),
            engine::PlanTarget::Offline { .. } => None,
        };
        let manager = ResourceManager::read_only(plan_target).await?;
        Ok::<_, engine::EngineError>((manager, destinations))
    };
    let (prepared, connected) = match prepare_while(global, args, &runtime, connect) {
        Ok(both) => both,
        Err(outcome) => return outcome,
    };
    let Prepared {
        desired,
        settings,
        style,
        shown,
    } = prepared;
    runtime.block_on(async {
        let (home_manager, destinations) = match connected {
            Ok(connected) => connected,
            Err(e) => return fail(e),
        };
        let mut fleet = Fleet::read_only(&home_manager, destinations.as_ref());
        let mut changes = Vec::with_capacity(desired.applications.len());
        let mut first = Vec::new();
        for wanted in desired.applications {
            let settings = SyncSettings::new(&wanted.app, &settings);
            let revision = desired.revision.as_deref();
            let manager = match fleet.manager_or_refusal(&wanted, revision, &settings).await {
                Ok(manager) => manager,
                Err(refused) => {
                    changes.push(refused);
                    continue;
                }
            };
            let staged = manager.plan(wanted, revision, &settings).await;
            // A plain folder is never synced as it is: no notice for it.
            if staged.never_synced() && !desired.plain_folder {
                first.push(staged.application().name.clone());
            }
            let run = manager.apply(staged, &settings).await;
            changes.push(manager.finish(run).await);
        }
        if !first.is_empty()
            && let Some(server) = home_manager.server()
        {
            say(first_sync::before_plan(&first, server));
        }
        let plans: Vec<Plan> = changes
            .into_iter()
            .filter_map(ChangeSet::into_plan)
            .collect();
        finish(shown);
        match args.output {
            OutputFormat::Text => print!("{}", render_plans(&plans, style, global.verbose > 0)),
            format => print_document(format, &PlanDocument::new(&plans)),
        }
        outcome_of(plans_exit_code(&plans))
    })
}

pub fn run_status(global: &GlobalArgs, args: StatusArgs) -> Outcome {
    if let Some(server) = &args.server {
        return runtime().block_on(super::serve::status_from_server(server, args.output));
    }
    // Without a relbot.yaml (a plain folder, or anywhere else) the status
    // namespace is the default and no application list is known.
    let config = relbot::config::load(&SourceArgs { source: None }.config_path(global)).ok();
    let namespace = config
        .as_ref()
        .map(|c| c.config.status.namespace.clone())
        .unwrap_or_else(|| "relbot".into());
    let configured: Vec<String> = config
        .iter()
        .flat_map(|c| c.config.applications.iter().map(|a| a.name.clone()))
        .collect();
    let style = Style {
        color: args.output == OutputFormat::Text && use_color(global),
    };
    runtime().block_on(async {
        let target = ClusterTarget {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        };
        let located = match locate(&target).await {
            Ok(Some(l)) => l,
            Ok(None) => return fail(relbot::cluster::client::ClusterError::NotConfigured),
            Err(e) => return fail(e),
        };
        let server = located
            .config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let cluster = match ReadOnlyCluster::new(located.config) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let results = match status::read_all(&cluster, &namespace).await {
            Ok(r) => r,
            Err(e) => {
                return fail(format!(
                    "cannot read sync results from namespace {namespace} at {server}: {e}\nhint: check that the cluster is up and that --kubeconfig/--context name it; `relbot status --server URL` asks a running relbot serve instead"
                ));
            }
        };
        match args.output {
            OutputFormat::Text => {
                if results.is_empty() {
                    println!("{}", first_sync::no_results(&server, &namespace));
                } else {
                    for app in configured
                        .iter()
                        .filter(|app| !results.iter().any(|r| &r.application == *app))
                    {
                        println!("{}", first_sync::app_never_synced(app));
                    }
                }
                for result in &results {
                    print!("{}", render_result(result, style, global.verbose > 0));
                    println!(
                        "    {}",
                        style.dim(&format!(
                            "at {}",
                            result.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                        ))
                    );
                }
            }
            format => print_document(format, &ResultDocument::new(&results)),
        }
        outcome_of(results_exit_code(&results))
    })
}
