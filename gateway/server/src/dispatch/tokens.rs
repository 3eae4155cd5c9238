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

/// Why no token could be had: transient (retry) or the account is wrong (fail).
pub struct TokenError {
    pub permanent: bool,
    pub reason: String,
}

impl TokenError {
    fn transient(reason: String) -> Self {
        Self { permanent: false, reason }
    }
}

#[derive(Default)]
pub struct Tokens {
    /// One fetch per account at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<HashMap<Key, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Keyed by (tenant, account, account config), so an edited account gets a
    /// new token. `None` = this account needs no token (also cached).
    cache: Mutex<HashMap<Key, (Option<String>, Instant)>>,
}

impl Tokens {
    /// The account config to pass to the plugin, with `"$token"` when the
    /// account uses one, and whether it does.
    pub async fn account_json(
        &self,
        d: &Dispatch,
        plugin: &std::sync::Arc<LoadedPlugin>,
        ctx: &CallContext,
        account: &herald_core::model::Account,
    ) -> Result<(String, bool), TokenError> {
        if !plugin.uses_tokens() {
            return Ok((account.config.to_string(), false));
        }
        let token = match self.cached(account) {
            Some(t) => t,
            None => {
                let gate = self.fetching.lock().await.entry(key(account)).or_default().clone();
                let _one = gate.lock().await;
                // Another batch may have fetched it while we waited.
                match self.cached(account) {
                    Some(t) => t,
                    None => self.fetch(d, plugin, ctx, account).await?,
                }
            }
        };
        let mut config = account.config.clone();
        if let (Some(t), Some(obj)) = (&token, config.as_object_mut()) {
            obj.insert("$token".into(), t.clone().into());
        }
        Ok((config.to_string(), token.is_some()))
    }

    fn cached(&self, account: &herald_core::model::Account) -> Option<Option<String>> {
        self.cache.lock().expect("tokens").get(&key(account)).filter(|(_, until)| *until > Instant::now()).map(|(t, _)| t.clone())
    }

    async fn fetch(
        &self,
        d: &Dispatch,
        plugin: &std::sync::Arc<LoadedPlugin>,
        ctx: &CallContext,
        account: &herald_core::model::Account,
    ) -> Result<Option<String>, TokenError> {
        let config = account.config.to_string();
        let (p, c, a) = (plugin.clone(), ctx.clone(), config.clone());
        let req = call_plugin(&d.metrics, plugin, "token_request", move || p.token_request(&c, &a))
            .await
            .map_err(|e| TokenError::transient(e.to_string()))?;
        let Some(req) = req else {
            self.cache.lock().expect("tokens").insert(key(account), (None, Instant::now() + Duration::from_secs(3600)));
            return Ok(None);
        };
        let resp = match d.transport.send(Request::Http(req)).await {
            Ok(Response::Http(r)) => r,
            Ok(_) => {
                return Err(TokenError::transient("token request got a non-HTTP answer".into()));
            }
            Err(e) => {
                return Err(TokenError { permanent: e.is_permanent(), reason: format!("token request: {e}") });
            }
        };
        let (p, c) = (plugin.clone(), ctx.clone());
        let token = call_plugin(&d.metrics, plugin, "parse_token", move || p.parse_token(&c, &config, &resp)).await.map_err(|e| {
            // The provider refused the account's credentials: retrying cannot help.
            let permanent = matches!(&e, herald_plugin_host::CallError::Plugin(herald_plugin_host::PluginFault::BadConfig(_)));
            TokenError { permanent, reason: format!("access token: {e}") }
        })?;
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
