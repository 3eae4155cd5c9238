//! `herald-plugin-check <plugin.wasm> [--account <json or @file>] [--fixtures <dir>]`
//! Exit status 0 when every check passes, 1 otherwise, 2 on bad usage.

use std::path::PathBuf;

const USAGE: &str = "usage: herald-plugin-check <plugin.wasm> [--account <json | @file>] [--fixtures <dir>] [--now-ms <ms>]

Loads the plugin in Herald's real plugin host and checks it against the
herald:channel contract and the recorded provider answers in <dir>
(see sdk/README.md, \"Conformance kit\").";

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut plugin = None;
    let mut opts = herald_plugin_check::Options::default();
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        let r: Result<(), String> = match a.as_str() {
            "--account" => value("--account").and_then(|v| match v.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).map(|s| opts.account = Some(s)).map_err(|e| format!("--account {file}: {e}")),
                None => {
                    opts.account = Some(v);
                    Ok(())
                }
            }),
            "--fixtures" => value("--fixtures").map(|v| opts.fixtures = Some(PathBuf::from(v))),
            "--now-ms" => value("--now-ms").and_then(|v| v.parse().map(|n| opts.now_ms = Some(n)).map_err(|_| "--now-ms: not a number".to_string())),
            "-h" | "--help" => {
                println!("{USAGE}");
                return std::process::ExitCode::SUCCESS;
            }
            other if plugin.is_none() && !other.starts_with('-') => {
                plugin = Some(PathBuf::from(other));
                Ok(())
            }
            other => Err(format!("unexpected argument {other:?}")),
        };
        if let Err(e) = r {
            eprintln!("herald-plugin-check: {e}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    }
    let Some(plugin) = plugin else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    let report = herald_plugin_check::check(&plugin, &opts);
    print!("{}", report.render());
    if report.ok() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) }
}
