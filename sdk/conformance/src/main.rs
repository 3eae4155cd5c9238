//! `herald-plugin-check <plugin.wasm> [--account <json or @file>] [--fixtures <dir>]`
//! Exit status 0 when every check passes, 1 otherwise, 2 on bad usage.

use std::path::PathBuf;

use clap::Parser;

/// Loads a channel plugin in Herald's real plugin host and checks it against
/// the herald:channel contract and the recorded provider answers in the
/// fixtures directory (see sdk/README.md, "Conformance kit").
///
/// Exit status: 0 when every check passes, 1 otherwise, 2 on bad usage.
#[derive(Parser)]
#[command(name = "herald-plugin-check", version)]
struct Cli {
    /// The plugin component (.wasm).
    #[arg(value_name = "PLUGIN.wasm")]
    plugin: PathBuf,
    /// An account config to check with: JSON, or @file to read it from a file.
    #[arg(long, value_name = "JSON|@FILE")]
    account: Option<String>,
    /// Directory of recorded provider answers.
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// The clock the plugin sees, in Unix milliseconds.
    #[arg(long, value_name = "MS")]
    now_ms: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut opts = herald_plugin_check::Options::default();
    if let Some(v) = cli.account {
        opts.account = Some(match v.strip_prefix('@') {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("herald-plugin-check: --account {file}: {e}");
                    return std::process::ExitCode::from(2);
                }
            },
            None => v,
        });
    }
    opts.fixtures = cli.fixtures;
    opts.now_ms = cli.now_ms;
    let report = herald_plugin_check::check(&cli.plugin, &opts);
    print!("{}", report.render());
    if report.ok() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) }
}
