//! Start-up seeding: the config file's tenants, keys, accounts, templates and
//! prices written to the config store, what the file no longer declares
//! revoked, and the demo tenant.

use std::net::SocketAddr;

use herald_backends::Sealer;
use herald_core::model::{Account, Price, Template, Tenant};
use herald_core::seams::ConfigStore;
use herald_plugin_host::PluginHost;
use rand::Rng;

use crate::config::Config;
use crate::state::key_hash;

/// What the config file declared at the last start, per tenant. The file is
/// authoritative for what it declares: whatever it declared then and no
/// longer does is revoked at this start. Keys and accounts made in the admin
/// were never declared here, so they are untouched.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Declared {
    tenants: std::collections::BTreeMap<String, DeclaredTenant>,
}

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct DeclaredTenant {
    /// SHA-256 of the API keys.
    api_keys: std::collections::BTreeSet<String>,
    accounts: std::collections::BTreeSet<String>,
}

const DECLARED: (&str, &str) = ("config-file", "declared");

impl Declared {
    fn of(cfg: &Config) -> Declared {
        let tenants = cfg
            .tenants
            .iter()
            .map(|t| {
                let declared = DeclaredTenant {
                    api_keys: t.api_keys.iter().map(|k| key_hash(k)).collect(),
                    accounts: t.accounts.iter().map(|a| a.name.clone()).collect(),
                };
                (t.id.clone(), declared)
            })
            .collect();
        Declared { tenants }
    }

    /// Revoke what `before` declared and `self` does not.
    async fn revoke_dropped(&self, before: &Declared, store: &dyn ConfigStore) -> anyhow::Result<()> {
        let none = DeclaredTenant::default();
        for (tenant, was) in &before.tenants {
            let now = self.tenants.get(tenant).unwrap_or(&none);
            for key in was.api_keys.difference(&now.api_keys) {
                store.remove_api_key(tenant, key).await?;
                tracing::info!(%tenant, "API key removed from the config file: revoked");
            }
            for account in was.accounts.difference(&now.accounts) {
                store.delete_account(tenant, account).await?;
                tracing::info!(%tenant, %account, "account removed from the config file: deleted");
            }
            if !self.tenants.contains_key(tenant) {
                tracing::info!(%tenant, "tenant removed from the config file: its keys and accounts from the file are revoked");
            }
        }
        Ok(())
    }
}

/// Write the config file's tenants, keys, accounts, templates and prices to
/// the config store (accounts are checked by their plugin first), and revoke
/// what an earlier version of the file declared and this one does not.
pub async fn seed(cfg: &Config, store: &dyn ConfigStore, plugins: &PluginHost, sealer: &Sealer) -> anyhow::Result<()> {
    let repo = herald_core::docs::Repo::new(store, "*");
    let before: Declared = repo.get(DECLARED.0, DECLARED.1).await.map_err(|e| anyhow::anyhow!(e.message))?.unwrap_or_default();
    let declared = Declared::of(cfg);
    declared.revoke_dropped(&before, store).await?;
    seed_declared(cfg, store, plugins, sealer).await?;
    if declared != before {
        repo.put(DECLARED.0, DECLARED.1, &declared).await.map_err(|e| anyhow::anyhow!(e.message))?;
    }
    // The admin service submits pushes under the same limits.
    let (kind, id) = herald_service::intake::LIMITS_DOC;
    repo.put(kind, id, &cfg.limits).await.map_err(|e| anyhow::anyhow!(e.message))?;
    Ok(())
}

async fn seed_declared(cfg: &Config, store: &dyn ConfigStore, plugins: &PluginHost, sealer: &Sealer) -> anyhow::Result<()> {
    for p in &cfg.prices {
        store.set_price("*", &Price { channel: p.channel.clone(), unit_minor: p.unit_minor, currency: p.currency.clone() }).await?;
    }
    for (i, t) in cfg.tenants.iter().enumerate() {
        let tenant = Tenant { id: t.id.clone(), name: t.name.clone().unwrap_or_else(|| t.id.clone()), currency: t.currency.clone() };
        store.upsert_tenant(&tenant).await?;
        for key in &t.api_keys {
            store.add_api_key(&t.id, &key_hash(key)).await?;
        }
        for (j, a) in t.accounts.iter().enumerate() {
            let field = format!("tenants[{i}].accounts[{j}]");
            let mut account = Account {
                tenant: t.id.clone(),
                name: a.name.clone(),
                plugin: a.plugin.clone(),
                config: a.config.clone(),
                rate_per_sec: a.rate_per_sec,
            };
            match plugins.get(&a.plugin) {
                Some(p) => {
                    let config = a.config.to_string();
                    let p2 = p.clone();
                    tokio::task::spawn_blocking(move || p2.validate_account(&config))
                        .await?
                        .map_err(|e| anyhow::anyhow!("{field} ({}): {e}", a.name))?;
                }
                None => {
                    tracing::warn!(account = %a.name, plugin = %a.plugin, "{field}: plugin not loaded; account not validated")
                }
            }
            seal(plugins, sealer, &mut account).map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
            store.upsert_account(&account).await?;
        }
        for tpl in &t.templates {
            herald_core::render::Compiled::new(&tpl.content).map_err(|e| anyhow::anyhow!("tenants[{i}].templates ({}): {e}", tpl.id))?;
            store.upsert_template(&Template { tenant: t.id.clone(), id: tpl.id.clone(), content: tpl.content.clone() }).await?;
        }
        for p in &t.prices {
            store.set_price(&t.id, &Price { channel: p.channel.clone(), unit_minor: p.unit_minor, currency: p.currency.clone() }).await?;
        }
    }
    Ok(())
}

/// Seal the fields the account's plugin declares secret (none if it is not loaded).
fn seal(plugins: &PluginHost, sealer: &Sealer, account: &mut Account) -> Result<(), herald_backends::SealError> {
    match plugins.get(&account.plugin) {
        Some(p) => sealer.seal(account, &p.info.secret_fields),
        None => Ok(()),
    }
}

const DEMO: &str = "demo";

/// A demo tenant whose webhook account posts to this gateway's own demo inbox.
/// Its API key is printed once, when it is created.
pub async fn ensure_demo(cfg: &Config, store: &dyn ConfigStore, plugins: &PluginHost, sealer: &Sealer, addr: SocketAddr) -> anyhow::Result<bool> {
    let existing = store.tenants().await?;
    if existing.iter().any(|t| t.id != DEMO) {
        return Ok(false);
    }
    if existing.is_empty() {
        let key = format!("hk_demo_{}", hex::encode(rand::rng().random::<[u8; 16]>()));
        store.upsert_tenant(&Tenant { id: DEMO.into(), name: "Demo".into(), currency: "CNY".into() }).await?;
        store.add_api_key(DEMO, &key_hash(&key)).await?;
        store
            .upsert_template(&Template {
                tenant: DEMO.into(),
                id: "welcome".into(),
                content: herald_core::model::Content {
                    subject: Some("Welcome, {{ name }}".into()),
                    text: Some("Hello {{ name }}, welcome to Herald.".into()),
                    html: Some("<p>Hello <b>{{ name }}</b>, welcome to Herald.</p>".into()),
                },
            })
            .await?;
        let key_file = cfg.data_dir.join("demo-api-key");
        write_private(&key_file, &key)?;
        println!("\n  Demo tenant created. API key: {key}\n  (also saved to {}; it is not printed again)\n", key_file.display());
    }
    let port = addr.port();
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let secret = match store.account(DEMO, "demo-webhook").await? {
        Some(a) => a.config.get("secret").and_then(|s| s.as_str()).map(str::to_string),
        None => None,
    }
    .unwrap_or_else(|| hex::encode(rand::rng().random::<[u8; 16]>()));
    let demo_accounts = [
        ("demo-webhook", "webhook", serde_json::json!({"url": format!("http://{host}:{port}/demo/inbox"), "secret": secret})),
        (
            "demo-email",
            "email",
            serde_json::json!({"from": "demo@herald.localhost", "from_name": "Herald demo",
            "smtp": {"host": "127.0.0.1", "port": 1025, "tls": "none"}}),
        ),
    ];
    for (name, plugin, config) in demo_accounts {
        let mut account = Account { tenant: DEMO.into(), name: name.into(), plugin: plugin.into(), config, rate_per_sec: None };
        seal(plugins, sealer, &mut account)?;
        store.upsert_account(&account).await?;
    }
    Ok(true)
}

/// Write a file readable only by its owner.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    writeln!(f, "{contents}")?;
    Ok(())
}
