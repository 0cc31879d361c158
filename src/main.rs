//! The `relbot` command line: parse arguments, set up logging, run one
//! subcommand, map its outcome to an exit code (0 done / in sync, 1 changes
//! found, 2 error — like `diff`, `argocd app diff` and `flux diff`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::memory::keep_large_blocks_apart();
    let args = cli::Cli::parse();
    cli::logging::init(&args.global);
    relbot::tls::init();
    cli::run(args).into()
}
