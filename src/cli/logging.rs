//! Logs go to stderr so stdout stays a clean report for people and scripts.

use tracing_subscriber::EnvFilter;

use super::{GlobalArgs, LogFormat};

pub fn init(global: &GlobalArgs) {
    let default = match global.verbose {
        0 => "warn",
        1 => "info,relbot=info",
        2 => "info,relbot=debug",
        _ => "debug,relbot=trace",
    };
    let filter = EnvFilter::try_from_env("RELBOT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder
            .with_ansi(!global.no_color && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}
