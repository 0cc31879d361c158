//! `relbot completion <shell>`: a shell completion script on stdout, the way
//! `kubectl completion`, `flux completion` and `argocd completion` work.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Outcome};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # bash, this shell only
  source <(relbot completion bash)
  # bash, every new shell
  relbot completion bash > ~/.local/share/bash-completion/completions/relbot
  # zsh (a directory on $fpath)
  relbot completion zsh > \"${fpath[1]}/_relbot\"
  # fish
  relbot completion fish > ~/.config/fish/completions/relbot.fish")]
pub struct CompletionArgs {
    /// The shell to write the completion script for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionArgs) -> Outcome {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    // Generated into memory first: clap_complete panics on a write error,
    // and `relbot completion bash | head` closing the pipe early is normal.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    match std::io::stdout().write_all(&script) {
        Ok(()) => Outcome::Clean,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Outcome::Clean,
        Err(e) => {
            eprintln!("error: cannot write the completion script to stdout: {e}");
            Outcome::Failed
        }
    }
}
