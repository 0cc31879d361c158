//! `controlplane up` starts a real control plane (etcd, kube-apiserver,
//! kube-controller-manager and the kubelet stand-in) from envtest-style
//! assets, writes its admin kubeconfig, and runs until SIGTERM/SIGINT or until
//! its parent (the test script) exits. `controlplane assets` lists the folders found.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use controlplane::{ControlPlane, asset_folders, client_from, standin};

const USAGE: &str = "usage:
  controlplane up --assets DIR [--kubeconfig-out PATH] [--failing-image IMAGE]...
  controlplane assets      (the folders from KUBEBUILDER_ASSETS or /usr/local/kubebuilder)";

fn fail(msg: &str) -> ExitCode {
    eprintln!("controlplane: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("assets") => {
            for dir in asset_folders() {
                println!("{}", dir.display());
            }
            ExitCode::SUCCESS
        }
        Some("up") => up(&args[1..]),
        _ => fail("expected a command"),
    }
}

fn up(args: &[String]) -> ExitCode {
    let (mut assets, mut out, mut failing) = (None::<PathBuf>, None::<PathBuf>, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--assets" => assets = Some(value().into()),
            "--kubeconfig-out" => out = Some(value().into()),
            "--failing-image" => failing.push(value()),
            other => return fail(&format!("unknown argument {other}")),
        }
    }
    let Some(assets) = assets else {
        return fail("--assets is required");
    };
    // Started on the main thread: the children die with the thread that
    // spawned them (PR_SET_PDEATHSIG), and this one lives as long as we do.
    let mut cp = match ControlPlane::start(&assets) {
        Ok(cp) => cp,
        Err(e) => {
            return fail(&format!(
                "cannot start the control plane from {}: {e}",
                assets.display()
            ));
        }
    };
    if let Some(out) = &out {
        let tmp = out.with_extension("tmp");
        if let Err(e) =
            std::fs::copy(cp.kubeconfig(), &tmp).and_then(|_| std::fs::rename(&tmp, out))
        {
            return fail(&format!("cannot write {}: {e}", out.display()));
        }
    }
    println!("{} (data and logs in {})", cp.url(), cp.dir().display());
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("no runtime: {e}")),
    };
    let kubeconfig = cp.kubeconfig();
    rt.block_on(async {
        let client = match client_from(&kubeconfig).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("controlplane: {e}");
                return;
            }
        };
        let standin = tokio::spawn(standin::run(client, failing));
        let (Ok(mut term), Ok(mut int)) = (
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        ) else {
            return;
        };
        let parent = std::os::unix::process::parent_id();
        let watch = async {
            // A killed test script cannot send SIGTERM: notice the re-parenting.
            // A control-plane process that died makes every later test fail: say which.
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if std::os::unix::process::parent_id() != parent {
                    return;
                }
                if let Some(why) = cp.exited() {
                    eprintln!("controlplane: {why}; its log is in {}", cp.dir().display());
                    return;
                }
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = watch => {}
        }
        standin.abort();
    });
    drop(rt);
    cp.stop();
    ExitCode::SUCCESS
}
