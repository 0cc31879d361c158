//! Logs go to stderr so stdout stays a clean report for people and scripts.

use std::io::Write;

use tracing_subscriber::EnvFilter;

use super::{GlobalArgs, LogFormat};

pub fn init(global: &GlobalArgs) {
    let default = match global.verbose {
        // kube's client logs a failed connection at ERROR; relbot reports
        // the same failure itself, with what to do about it.
        0 => "warn,kube_client=off",
        1 => "info,relbot=info",
        2 => "info,relbot=debug",
        _ => "debug,relbot=trace",
    };
    let filter = EnvFilter::try_from_env("RELBOT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder
            .with_ansi(!global.no_color && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

/// stderr, with the progress line erased before each log line so the two
/// never share a line.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        super::progress::around_output(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        super::progress::around_output(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
