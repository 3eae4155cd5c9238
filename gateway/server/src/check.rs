//! `herald-gateway validate`: check a configuration without serving.
//!
//! What is checked: the file's keys and types (unknown keys are refused,
//! errors name the key), the cross-field rules [`Config::load`] applies, the
//! `transport` settings (address allowlist, proxy, CA files), the secrets key,
//! every declared account against its plugin's `validate-account` (as the
//! seeding at start does), and every declared template. With `connect`, the
//! store and the queue are opened as a second process would open them (no
//! lock on the embedded database) and asked one read each.
//!
//! Nothing is written, no plugin sends anything, and no secret value is
//! printed: problems name the key (and the account's name), not its value.

use std::path::Path;
use std::time::Duration;

use herald_plugin_host::PluginHost;

use crate::config::Config;

/// How long each `--connect` probe may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What `validate` found.
#[derive(Debug, Default)]
pub struct Report {
    /// What was checked and passed, one line each.
    pub passed: Vec<String>,
    /// What is wrong, one line each, naming the key.
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn pass(&mut self, line: impl Into<String>) {
        self.passed.push(line.into());
    }

    fn fail(&mut self, line: impl Into<String>) {
        self.problems.push(line.into());
    }
}

/// Check the configuration in `file` (plus `HERALD_*` overrides, as a start
/// would read them); with `connect`, also reach the store and the queue.
pub async fn validate(file: Option<&Path>, connect: bool) -> Report {
    let mut r = Report::default();
    let cfg = match Config::load(file) {
        Ok(c) => c,
        Err(e) => {
            r.fail(e);
            return r;
        }
    };
    r.pass(match file {
        Some(f) => format!("{}: keys and types", f.display()),
        None => "embedded defaults and HERALD_* variables: keys and types".to_string(),
    });
    match crate::transport::guard(&cfg.transport, None) {
        Ok(_) => r.pass("transport: allow_private, proxy, ca_files"),
        Err(e) => r.fail(e),
    }
    if let Some(key) = &cfg.secrets_key {
        match herald_backends::Sealer::from_base64(key) {
            Ok(_) => r.pass("secrets_key"),
            Err(e) => r.fail(format!("secrets_key: {e}")),
        }
    }
    check_tenants(&cfg, &mut r);
    if connect {
        check_backends(&cfg, &mut r).await;
    }
    r
}

/// Accounts against their plugins, and templates.
fn check_tenants(cfg: &Config, r: &mut Report) {
    let accounts = cfg.tenants.iter().map(|t| t.accounts.len()).sum::<usize>();
    for (i, t) in cfg.tenants.iter().enumerate() {
        for tpl in &t.templates {
            if let Err(e) = herald_core::render::Compiled::new(&tpl.content) {
                r.fail(format!("tenants[{i}].templates ({}): {e}", tpl.id));
            }
        }
    }
    if accounts == 0 {
        return;
    }
    let host = match PluginHost::new(cfg.plugins.sandbox.clone(), cfg.plugins.allow_hosts.clone()) {
        Ok(h) => h,
        Err(e) => {
            r.fail(format!("plugins.sandbox: {e}"));
            return;
        }
    };
    let dir = cfg.plugins_dir();
    let sync = host.sync_dir(&dir);
    for (path, e) in &sync.errors {
        r.fail(format!("plugins.dir: {} does not load: {e}", path.display()));
    }
    let mut checked = 0;
    for (i, t) in cfg.tenants.iter().enumerate() {
        let mut names = std::collections::HashSet::new();
        for (j, a) in t.accounts.iter().enumerate() {
            let field = format!("tenants[{i}].accounts[{j}]");
            if !names.insert(a.name.as_str()) {
                r.fail(format!("{field}.name: {:?} is declared twice in tenant {:?}", a.name, t.id));
            }
            match host.get(&a.plugin) {
                Some(p) => match p.validate_account(&a.config.to_string()) {
                    Ok(()) => checked += 1,
                    Err(e) => r.fail(format!("{field} ({}): plugin {:?} refuses the account's config: {e}", a.name, a.plugin)),
                },
                None => r.fail(format!(
                    "{field}.plugin ({}): no plugin {:?} in {} (loaded: {})",
                    a.name,
                    a.plugin,
                    dir.display(),
                    if host.names().is_empty() { "none".to_string() } else { host.names().join(", ") }
                )),
            }
        }
    }
    if checked > 0 {
        r.pass(format!("{checked} account(s) accepted by their plugins"));
    }
}

/// Open the store and the queue (shared, no lock) and read once from each.
async fn check_backends(cfg: &Config, r: &mut Report) {
    let opened = tokio::time::timeout(
        CONNECT_TIMEOUT,
        herald_backends::open(&cfg.storage, &cfg.queue, &cfg.data_dir, herald_backends::Role::Shared, herald_core::Clock::system()),
    )
    .await;
    let backends = match opened {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            r.fail(format!("connect: {e:#}"));
            return;
        }
        Err(_) => {
            r.fail(format!("connect: storage ({}) / queue ({}) did not open within {CONNECT_TIMEOUT:?}", cfg.storage.backend, cfg.queue.backend));
            return;
        }
    };
    let store = match cfg.storage.backend.as_str() {
        "cql" => format!("storage.cql ({})", cfg.storage.cql.contact_points.join(",")),
        _ => format!("storage ({})", herald_backends::db_path(&cfg.storage, &cfg.data_dir).display()),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, backends.config.tenants()).await {
        Ok(Ok(t)) => r.pass(format!("connect: {store} answers ({} tenant(s))", t.len())),
        Ok(Err(e)) => r.fail(format!("connect: {store}: {e}")),
        Err(_) => r.fail(format!("connect: {store}: no answer within {CONNECT_TIMEOUT:?}")),
    }
    let queue = match cfg.queue.backend.as_str() {
        "kafka" => format!("queue.kafka ({})", cfg.queue.kafka.brokers),
        _ => "queue (embedded)".to_string(),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, backends.queue.depth()).await {
        Ok(Ok(d)) => r.pass(format!("connect: {queue} answers (depth {d})")),
        Ok(Err(e)) => r.fail(format!("connect: {queue}: {e}")),
        Err(_) => r.fail(format!("connect: {queue}: no answer within {CONNECT_TIMEOUT:?}")),
    }
}
