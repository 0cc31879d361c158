//! `kubesim serve` runs an emulator for manual runs and for test suites that
//! reach it through `RELBOT_TEST_KUBECONFIG`; `kubesim bench` prints req/s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use kubesim::bench::{self, BenchOptions};
use kubesim::{ControllerOptions, KubeSim, SimOptions};

const USAGE: &str = "usage:
  kubesim serve [--port N] [--kubeconfig-out PATH] [--controllers] [--ready-delay 200ms]
                [--failing-image IMAGE]... [--service-cidr 10.43.0.0/16] [--write-latency 5ms]
  kubesim bench [--requests N] [--objects N] [--concurrency N]";

fn parse_duration(s: &str) -> Option<Duration> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs.parse::<f64>().ok().map(Duration::from_secs_f64);
    }
    s.parse().ok().map(Duration::from_millis)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("kubesim: {msg}\n{USAGE}");
    ExitCode::from(2)
}

async fn serve(args: &[String]) -> ExitCode {
    let mut opts = SimOptions::default();
    let mut kubeconfig_out: Option<PathBuf> = None;
    let mut controllers = false;
    let mut ctl = ControllerOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--port" => match value().parse() {
                Ok(p) => opts.port = p,
                Err(_) => return fail("--port needs a number"),
            },
            "--kubeconfig-out" => kubeconfig_out = Some(value().into()),
            "--controllers" => controllers = true,
            "--ready-delay" => match parse_duration(&value()) {
                Some(d) => ctl.ready_delay = d,
                None => return fail("--ready-delay needs a duration such as 200ms"),
            },
            "--failing-image" => ctl.failing_images.push(value()),
            "--service-cidr" => opts.service_cidr = value(),
            "--write-latency" => match parse_duration(&value()) {
                Some(d) => opts.write_latency = d,
                None => return fail("--write-latency needs a duration such as 5ms"),
            },
            other => return fail(&format!("unknown argument {other:?}")),
        }
    }
    if controllers {
        opts.controllers = Some(ctl);
    }
    let sim = match KubeSim::start(opts).await {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    if let Some(path) = kubeconfig_out {
        // Written whole then renamed, so a waiting script never reads half a file.
        let tmp = path.with_extension("tmp");
        if let Err(e) = sim
            .write_kubeconfig(&tmp)
            .and_then(|_| std::fs::rename(&tmp, &path))
        {
            return fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
    println!("{}", sim.url());
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot listen for SIGTERM: {e}")),
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown();
    ExitCode::SUCCESS
}

async fn bench_cmd(args: &[String]) -> ExitCode {
    let mut opts = BenchOptions::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let n: Option<usize> = it.next().and_then(|v| v.parse().ok());
        match (a.as_str(), n) {
            ("--requests", Some(n)) => opts.requests = n,
            ("--objects", Some(n)) => opts.objects = n.max(1),
            ("--concurrency", Some(n)) => opts.concurrency = n.max(1),
            _ => return fail(&format!("bad argument {a:?}")),
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("kubesim bench: debug build; use --release for meaningful figures");
    }
    match bench::run(opts).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("bench failed: {e}")),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]).await,
        Some("bench") => bench_cmd(&args[1..]).await,
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => fail("expected a command"),
    }
}
