//! Provider access tokens (1.1 plugins with `token-request`): fetched through
//! the host's transport, cached per (tenant, account) until shortly before
//! they expire, dropped when the provider rejects them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_plugin_host::LoadedPlugin;
use herald_plugin_host::types::{CallContext, Request, Response};

use super::Dispatch;
use crate::metrics::call_plugin;

type Key = (String, String, String);

fn key(account: &herald_core::model::Account) -> Key {
    (account.tenant.clone(), account.name.clone(), account.config.to_string())
}

#[derive(Default)]
pub struct Tokens {
    /// Keyed by (tenant, account, account config), so an edited account gets a
    /// new token. `None` = this account needs no token (also cached).
    cache: Mutex<HashMap<Key, (Option<String>, Instant)>>,
}

impl Tokens {
    /// The account config to pass to the plugin: with `"$token"` for plugins
    /// that use tokens. `Err` is a human-readable reason (retryable).
    pub async fn account_json(
        &self,
        d: &Dispatch,
        plugin: &std::sync::Arc<LoadedPlugin>,
        ctx: &CallContext,
        account: &herald_core::model::Account,
    ) -> Result<String, String> {
        if !plugin.uses_tokens() {
            return Ok(account.config.to_string());
        }
        let cached = self.cache.lock().expect("tokens").get(&key(account)).filter(|(_, until)| *until > Instant::now()).map(|(t, _)| t.clone());
        let token = match cached {
            Some(t) => t,
            None => self.fetch(d, plugin, ctx, account).await?,
        };
        let mut config = account.config.clone();
        if let (Some(t), Some(obj)) = (&token, config.as_object_mut()) {
            obj.insert("$token".into(), t.clone().into());
        }
        Ok(config.to_string())
    }

    async fn fetch(
        &self,
        d: &Dispatch,
        plugin: &std::sync::Arc<LoadedPlugin>,
        ctx: &CallContext,
        account: &herald_core::model::Account,
    ) -> Result<Option<String>, String> {
        let config = account.config.to_string();
        let (p, c, a) = (plugin.clone(), ctx.clone(), config.clone());
        let req = call_plugin(&d.metrics, plugin, "token_request", move || p.token_request(&c, &a)).await.map_err(|e| e.to_string())?;
        let Some(req) = req else {
            self.cache.lock().expect("tokens").insert(key(account), (None, Instant::now() + Duration::from_secs(3600)));
            return Ok(None);
        };
        let resp = match d.transport.send(Request::Http(req)).await {
            Ok(Response::Http(r)) => r,
            Ok(_) => return Err("token request got a non-HTTP answer".into()),
            Err(e) => return Err(format!("token request: {e}")),
        };
        let (p, c) = (plugin.clone(), ctx.clone());
        let token = call_plugin(&d.metrics, plugin, "parse_token", move || p.parse_token(&c, &config, &resp))
            .await
            .map_err(|e| format!("access token: {e}"))?;
        // Refresh a little early: a tenth of the lifetime, at most a minute.
        let life = Duration::from_millis(token.expires_in_ms);
        let until = Instant::now() + life.saturating_sub((life / 10).min(Duration::from_secs(60)));
        self.cache.lock().expect("tokens").insert(key(account), (Some(token.value.clone()), until));
        tracing::info!(tenant = %account.tenant, account = %account.name, plugin = plugin.name(), expires_in_ms = token.expires_in_ms, "access token fetched");
        Ok(Some(token.value))
    }

    pub fn invalidate(&self, account: &herald_core::model::Account) {
        self.cache.lock().expect("tokens").remove(&key(account));
    }
}
