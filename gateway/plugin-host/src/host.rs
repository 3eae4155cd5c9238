use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Trap};

use crate::allow::HostPatterns;
use crate::types::{
    AccessToken, CallContext, CallbackReply, ContentFormat, Delivery, HttpRequest, HttpResponse, Outbound, Outcome, PluginError, PluginInfo, Request,
    Response, Usage,
};
use crate::{ChannelPlugin, ChannelPluginAuth, ChannelPluginAuthPre, ChannelPluginMetered, ChannelPluginMeteredPre, ChannelPluginPre};

/// Limits applied to every plugin call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Wall-clock budget of one call.
    pub deadline_ms: u64,
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// Total bytes of bodies and headers one `build` may return.
    pub max_output_bytes: usize,
    /// Most outbound requests one `build` may return.
    pub max_outbounds: usize,
    /// Concurrent instances (pooling allocator slots).
    pub max_instances: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self { deadline_ms: 1_000, memory_bytes: 64 << 20, max_output_bytes: 8 << 20, max_outbounds: 1_000, max_instances: 64 }
    }
}

/// Why a plugin call did not produce a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("plugin exceeded its deadline of {0} ms")]
    Deadline(u64),
    #[error("plugin exceeded its memory limit: {0}")]
    Memory(String),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin output rejected: {0}")]
    Output(String),
    #[error("plugin asked for host {0:?}, which is not allowed")]
    HostDenied(String),
    #[error("plugin error: {0}")]
    Plugin(PluginFault),
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
}

/// What a plugin itself reported (its `plugin-error`), typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFault {
    /// The account configuration is wrong.
    #[error("bad account config: {0}")]
    BadConfig(String),
    /// A delivery cannot be sent on this channel (the recipient's fault).
    #[error("invalid delivery: {0}")]
    InvalidDelivery(String),
    /// A bug or unexpected state in the plugin.
    #[error("internal: {0}")]
    Internal(String),
}

impl CallError {
    /// Metric label for the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deadline(_) => "deadline",
            Self::Memory(_) => "memory",
            Self::Trap(_) => "trap",
            Self::Output(_) => "output",
            Self::HostDenied(_) => "host_denied",
            Self::Plugin(_) => "plugin_error",
            Self::Instantiate(_) => "instantiate",
        }
    }
    /// Whether trying again later could help (a busy machine can miss a deadline).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Deadline(_) | Self::Instantiate(_))
    }
}

fn plugin_error(e: PluginError) -> CallError {
    CallError::Plugin(match e {
        PluginError::BadConfig(m) => PluginFault::BadConfig(m),
        PluginError::InvalidDelivery(m) => PluginFault::InvalidDelivery(m),
        PluginError::Internal(m) => PluginFault::Internal(m),
    })
}

struct State {
    limits: Limits,
}

/// The store's limits, remembering a refused memory growth: a call that
/// fails after one is a memory fault, told by this flag, not by its message.
struct Limits {
    inner: StoreLimits,
    memory_refused: bool,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grown = self.inner.memory_growing(current, desired, maximum);
        if !matches!(grown, Ok(true)) {
            self.memory_refused = true;
        }
        grown
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A loaded plugin: its facts and a cached, pre-linked instance template.
pub struct LoadedPlugin {
    pub info: PluginInfo,
    pub path: PathBuf,
    /// SHA-256 of the .wasm file.
    pub digest: String,
    /// What this plugin's recipients look like (checked at ingest).
    pub recipients: herald_core::address::AddressRule,
    /// How it takes a provider's approved template, if it sends only those.
    pub provider_template: Option<herald_core::provider_template::TemplateBinding>,
    hosts: HostPatterns,
    operator_hosts: Option<HostPatterns>,
    pre: ChannelPluginPre<State>,
    /// Present when the plugin exports the 1.1 access-token functions.
    auth: Option<ChannelPluginAuthPre<State>>,
    /// Present when the plugin exports the 1.2 `callback-usage`.
    metered: Option<ChannelPluginMeteredPre<State>>,
    engine: Engine,
    cfg: HostConfig,
    slots: Arc<Slots>,
}

/// Counts instances in use so that calls wait for a pooling-allocator slot
/// instead of failing when more calls run at once than `max_instances`.
struct Slots {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Slots {
    fn take(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().expect("slots");
        while *free == 0 {
            free = self.freed.wait(free).expect("slots");
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().expect("slots") += 1;
        self.0.freed.notify_one();
    }
}

/// The result of `build`: requests to send, and deliveries the plugin left out.
#[derive(Debug)]
pub struct Built {
    pub outbounds: Vec<Outbound>,
    pub uncovered: Vec<String>,
}

/// Compiles, caches and calls plugins.
pub struct PluginHost {
    engine: Engine,
    cfg: HostConfig,
    slots: Arc<Slots>,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    /// Operator allowlists per plugin name; when present a host must match both
    /// the plugin's declaration and this list.
    operator_hosts: HashMap<String, HostPatterns>,
    /// What was loaded from which file, to reload only what changed.
    files: std::sync::Mutex<HashMap<PathBuf, LoadedFile>>,
    /// Files that failed to load, with the stamp they had, so they are retried only when they change.
    failed: std::sync::Mutex<HashMap<PathBuf, (Stamp, String)>>,
}

/// A file's modification time and length.
type Stamp = (std::time::SystemTime, u64);

struct LoadedFile {
    stamp: Stamp,
    digest: String,
    name: String,
}

/// What one pass over the plugin directory did.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// Plugins loaded or replaced: (name, version, sha256).
    pub loaded: Vec<(String, String, String)>,
    /// Plugins whose file disappeared and which were unloaded.
    pub removed: Vec<String>,
    /// Files that failed to load in this pass (the previous version, if any, keeps serving).
    pub errors: Vec<(PathBuf, String)>,
    /// Every file currently failing, including ones that failed in an earlier pass and did not change.
    pub failing: Vec<(PathBuf, String)>,
    pub unchanged: usize,
}

impl PluginHost {
    pub fn new(cfg: HostConfig, operator_hosts: HashMap<String, Vec<String>>) -> Result<Self, String> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(cfg.max_instances)
            .total_core_instances(cfg.max_instances * 4)
            .total_memories(cfg.max_instances * 2)
            .total_tables(cfg.max_instances * 4)
            .max_memory_size(cfg.memory_bytes)
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(16);
        let mut config = Config::new();
        config.epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| format!("wasm engine: {e}"))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("herald-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .map_err(|e| e.to_string())?;
        let operator_hosts = operator_hosts.into_iter().map(|(k, v)| (k, HostPatterns::new(v))).collect();
        // Each call instantiates one component; keep a margin for its core instances.
        let slots = Arc::new(Slots { free: std::sync::Mutex::new(cfg.max_instances.max(1) as usize), freed: std::sync::Condvar::new() });
        Ok(Self { engine, cfg, slots, plugins: RwLock::new(HashMap::new()), operator_hosts, files: Default::default(), failed: Default::default() })
    }

    /// Compile and register one plugin file (replacing one of the same name).
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedPlugin>, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let plugin = Arc::new(self.compile(path, &bytes)?);
        self.plugins.write().expect("plugins lock").insert(plugin.info.name.clone(), plugin.clone());
        Ok(plugin)
    }

    /// Bring the loaded set in line with `*.wasm` files in `dir`: load new and
    /// changed files, unload plugins whose file is gone. A file that fails to
    /// load is reported and the version already loaded keeps serving.
    pub fn sync_dir(&self, dir: &Path) -> SyncReport {
        use sha2::Digest;
        let mut report = SyncReport::default();
        let mut present: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect(),
            Err(e) => {
                report.errors.push((dir.to_path_buf(), format!("cannot read plugin directory: {e}")));
                return report;
            }
        };
        present.sort();
        let mut files = self.files.lock().expect("plugin files");
        let mut failed = self.failed.lock().expect("failed plugin files");
        failed.retain(|p, _| present.contains(p));
        for path in &present {
            let stamp = match std::fs::metadata(path) {
                Ok(m) => (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()),
                Err(e) => {
                    report.errors.push((path.clone(), e.to_string()));
                    continue;
                }
            };
            if files.get(path).is_some_and(|f| f.stamp == stamp) && !failed.contains_key(path) {
                report.unchanged += 1;
                continue;
            }
            if failed.get(path).is_some_and(|(s, _)| *s == stamp) {
                continue;
            }
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    report.errors.push((path.clone(), e.to_string()));
                    continue;
                }
            };
            let digest = hex::encode(sha2::Sha256::digest(&bytes));
            if let Some(f) = files.get_mut(path).filter(|f| f.digest == digest) {
                f.stamp = stamp;
                failed.remove(path);
                report.unchanged += 1;
                continue;
            }
            match self.compile(path, &bytes) {
                Ok(plugin) => {
                    let name = plugin.info.name.clone();
                    report.loaded.push((name.clone(), plugin.info.version.clone(), digest.clone()));
                    self.plugins.write().expect("plugins lock").insert(name.clone(), Arc::new(plugin));
                    files.insert(path.clone(), LoadedFile { stamp, digest, name });
                    failed.remove(path);
                }
                Err(e) => {
                    report.errors.push((path.clone(), e.clone()));
                    failed.insert(path.clone(), (stamp, e));
                }
            }
        }
        report.failing = failed.iter().map(|(p, (_, e))| (p.clone(), e.clone())).collect();
        report.failing.sort();
        let gone: Vec<PathBuf> = files.keys().filter(|p| !present.contains(p)).cloned().collect();
        for path in gone {
            let f = files.remove(&path).expect("present");
            // Unload only if no other file now provides that name.
            if !files.values().any(|o| o.name == f.name) {
                self.plugins.write().expect("plugins lock").remove(&f.name);
                report.removed.push(f.name);
            }
        }
        report
    }

    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<LoadedPlugin, String> {
        use sha2::Digest;
        let component = Component::new(&self.engine, bytes).map_err(|e| format!("{}: not a valid component: {}", path.display(), e.root_cause()))?;
        let mut linker: Linker<State> = Linker::new(&self.engine);
        provide_hash_seed(&self.engine, &component, &mut linker).map_err(|e| e.to_string())?;
        // No other WASI: whatever else the guest imports traps if called.
        linker.define_unknown_imports_as_traps(&component).map_err(|e| e.to_string())?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| format!("{}: {}", path.display(), e.root_cause()))?;
        let auth = ChannelPluginAuthPre::new(instance_pre.clone()).ok();
        let metered = ChannelPluginMeteredPre::new(instance_pre.clone()).ok();
        let pre = ChannelPluginPre::new(instance_pre)
            .map_err(|e| format!("{}: does not implement herald:channel 1.x: {}", path.display(), e.root_cause()))?;
        let mut plugin = LoadedPlugin {
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                channel: String::new(),
                formats: vec![],
                max_batch: 1,
                account_schema: String::new(),
                secret_fields: vec![],
                hosts: vec![],
                billing_unit: String::new(),
            },
            path: path.to_path_buf(),
            digest: hex::encode(sha2::Sha256::digest(bytes)),
            recipients: herald_core::address::AddressRule::Any,
            provider_template: None,
            hosts: HostPatterns::default(),
            operator_hosts: None,
            pre,
            auth,
            metered,
            engine: self.engine.clone(),
            cfg: self.cfg.clone(),
            slots: self.slots.clone(),
        };
        let info = plugin.call(|p, s| p.call_describe(s)).map_err(|e| format!("{}: describe failed: {e}", path.display()))?;
        check_info(&info).map_err(|e| format!("{}: {e}", path.display()))?;
        let declared =
            herald_core::address::AddressRule::declared_in(&info.account_schema).map_err(|e| format!("{}: account schema: {e}", path.display()))?;
        plugin.recipients = herald_core::address::AddressRule::for_channel(&info.channel, declared.as_ref());
        plugin.provider_template = herald_core::provider_template::TemplateBinding::declared_in(&info.account_schema)
            .map_err(|e| format!("{}: account schema: {e}", path.display()))?;
        plugin.hosts = HostPatterns::new(info.hosts.clone());
        plugin.operator_hosts = self.operator_hosts.get(&info.name).cloned();
        plugin.info = info;
        Ok(plugin)
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.read().expect("plugins lock").get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.plugins.read().expect("plugins lock").keys().cloned().collect();
        v.sort();
        v
    }

    /// Every loaded plugin, by name.
    pub fn loaded(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut v: Vec<_> = self.plugins.read().expect("plugins lock").values().cloned().collect();
        v.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        v
    }
}

/// `wasi:random/insecure-seed` is the one WASI function plugins get: Rust's
/// `HashMap` asks it for a seed when created, so without it every plugin (and
/// dependency) using a `HashMap` would trap. It is a fresh random seed per call,
/// which grants no capability (no I/O, no clock).
fn provide_hash_seed(engine: &Engine, component: &Component, linker: &mut Linker<State>) -> wasmtime::Result<()> {
    for (name, _) in component.component_type().imports(engine) {
        if name.starts_with("wasi:random/insecure-seed@") {
            linker.root().instance(name)?.func_wrap("insecure-seed", |_store, (): ()| Ok(((rand::random::<u64>(), rand::random::<u64>()),)))?;
        }
    }
    Ok(())
}

fn check_info(info: &PluginInfo) -> Result<(), String> {
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 64
        && info.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(format!("invalid plugin name {:?} (lower-case letters, digits, - and _)", info.name));
    }
    if info.max_batch == 0 {
        return Err("max-batch must be at least 1".into());
    }
    if !info.account_schema.is_empty() && serde_json::from_str::<serde_json::Value>(&info.account_schema).is_err() {
        return Err("account-schema is not valid JSON".into());
    }
    Ok(())
}

/// What a failed call was: past its deadline (an epoch interrupt), out of
/// memory (the limiter refused a growth), or another trap.
fn classify(e: wasmtime::Error, deadline_ms: u64, memory_refused: bool) -> CallError {
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return CallError::Deadline(deadline_ms);
    }
    let root = e.root_cause().to_string();
    if memory_refused { CallError::Memory(root) } else { CallError::Trap(root) }
}

fn request_host(req: &Request) -> Result<String, CallError> {
    match req {
        Request::Http(h) => {
            let uri: http::Uri = h.url.parse().map_err(|_| CallError::Output(format!("invalid URL {:?}", h.url)))?;
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => return Err(CallError::Output(format!("URL {:?} is not http(s)", h.url))),
            }
            uri.host().map(str::to_string).ok_or_else(|| CallError::Output(format!("URL {:?} has no host", h.url)))
        }
        Request::Smtp(m) => Ok(m.relay.host.clone()),
    }
}

fn request_size(req: &Request) -> usize {
    match req {
        Request::Http(h) => h.url.len() + h.body.len() + h.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
        Request::Smtp(m) => m.mime.len() + m.recipients.iter().map(String::len).sum::<usize>(),
    }
}

impl LoadedPlugin {
    fn store(&self) -> Store<State> {
        let inner = StoreLimitsBuilder::new().memory_size(self.cfg.memory_bytes).instances(16).trap_on_grow_failure(true).build();
        let mut store = Store::new(&self.engine, State { limits: Limits { inner, memory_refused: false } });
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.cfg.deadline_ms.max(1));
        store
    }

    /// One call on a fresh instance with a deadline and memory cap.
    fn call<T>(&self, f: impl FnOnce(&ChannelPlugin, &mut Store<State>) -> wasmtime::Result<T>) -> Result<T, CallError> {
        self.call_on(|s| self.pre.instantiate(s), f)
    }

    /// Take a slot, instantiate one world's bindings on a fresh store, call.
    fn call_on<B, T>(
        &self,
        instantiate: impl FnOnce(&mut Store<State>) -> wasmtime::Result<B>,
        f: impl FnOnce(&B, &mut Store<State>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let _slot = self.slots.take();
        let mut store = self.store();
        let instance = instantiate(&mut store).map_err(|e| CallError::Instantiate(e.root_cause().to_string()))?;
        f(&instance, &mut store).map_err(|e| classify(e, self.cfg.deadline_ms, store.data().limits.memory_refused))
    }

    /// Like `call`, for the 1.1 access-token functions.
    fn call_auth<T>(&self, f: impl FnOnce(&ChannelPluginAuth, &mut Store<State>) -> wasmtime::Result<T>) -> Result<Option<T>, CallError> {
        let Some(pre) = &self.auth else {
            return Ok(None);
        };
        self.call_on(|s| pre.instantiate(s), f).map(Some)
    }

    /// Like `call`, for the 1.2 `callback-usage`.
    fn call_metered<T>(&self, f: impl FnOnce(&ChannelPluginMetered, &mut Store<State>) -> wasmtime::Result<T>) -> Result<Option<T>, CallError> {
        let Some(pre) = &self.metered else {
            return Ok(None);
        };
        self.call_on(|s| pre.instantiate(s), f).map(Some)
    }

    /// The contract worlds the plugin implements: `channel-plugin` (1.0),
    /// `channel-plugin-auth` (1.1), `channel-plugin-metered` (1.2).
    pub fn worlds(&self) -> Vec<&'static str> {
        let mut w = vec!["channel-plugin"];
        w.extend(self.auth.as_ref().map(|_| "channel-plugin-auth"));
        w.extend(self.metered.as_ref().map(|_| "channel-plugin-metered"));
        w
    }

    /// The usage a provider callback reports (empty for plugins without
    /// `callback-usage`). Call it only after `parse_callback` accepted the request.
    pub fn callback_usage(&self, ctx: &CallContext, account: &str, request: &HttpRequest) -> Result<Vec<Usage>, CallError> {
        match self.call_metered(|p, s| p.call_callback_usage(s, ctx, account, request))? {
            Some(r) => r.map_err(plugin_error),
            None => Ok(vec![]),
        }
    }

    /// Whether the plugin implements the 1.1 access-token functions.
    pub fn uses_tokens(&self) -> bool {
        self.auth.is_some()
    }

    /// The request that obtains an access token, checked against the host
    /// allowlist; `None` when the plugin or this account needs no token.
    pub fn token_request(&self, ctx: &CallContext, account: &str) -> Result<Option<HttpRequest>, CallError> {
        let req = self.call_auth(|p, s| p.call_token_request(s, ctx, account))?.flatten();
        if let Some(r) = &req {
            let host = request_host(&Request::Http(r.clone()))?;
            if !self.allows_host(&host) {
                return Err(CallError::HostDenied(host));
            }
        }
        Ok(req)
    }

    pub fn parse_token(&self, ctx: &CallContext, account: &str, response: &HttpResponse) -> Result<AccessToken, CallError> {
        match self.call_auth(|p, s| p.call_parse_token(s, ctx, account, response))? {
            Some(r) => r.map_err(plugin_error),
            None => Err(CallError::Plugin(PluginFault::Internal("plugin has no parse-token".into()))),
        }
    }

    /// Whether a provider answer rejected the access token (false for plugins without tokens).
    pub fn token_expired(&self, response: &Response) -> Result<bool, CallError> {
        Ok(self.call_auth(|p, s| p.call_token_expired(s, response))?.unwrap_or(false))
    }

    /// A host must be declared by the plugin and, when the operator set a
    /// list for this plugin, be on that list too.
    pub fn allows_host(&self, host: &str) -> bool {
        self.hosts.allows(host) && self.operator_hosts.as_ref().is_none_or(|op| op.allows(host))
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Whether the plugin accepts this content format.
    /// The declared content formats as the WIT names them: "text", "html", "markdown", "voice".
    pub fn format_names(&self) -> Vec<String> {
        self.info
            .formats
            .iter()
            .map(|f| match f {
                ContentFormat::Text => "text",
                ContentFormat::Html => "html",
                ContentFormat::Markdown => "markdown",
                ContentFormat::Voice => "voice",
            })
            .map(String::from)
            .collect()
    }

    pub fn accepts(&self, format: ContentFormat) -> bool {
        self.info.formats.contains(&format)
    }

    pub fn validate_account(&self, account: &str) -> Result<(), CallError> {
        self.call(|p, s| p.call_validate_account(s, account))?.map_err(plugin_error)
    }

    /// Build requests for a batch, then check them: size, count, hosts, and
    /// that every delivery id belongs to the batch and appears once.
    pub fn build(&self, ctx: &CallContext, account: &str, batch: &[Delivery]) -> Result<Built, CallError> {
        let outbounds = self.call(|p, s| p.call_build(s, ctx, account, batch))?.map_err(plugin_error)?;
        if outbounds.len() > self.cfg.max_outbounds {
            return Err(CallError::Output(format!("{} requests; at most {}", outbounds.len(), self.cfg.max_outbounds)));
        }
        let total: usize = outbounds.iter().map(|o| request_size(&o.request)).sum();
        if total > self.cfg.max_output_bytes {
            return Err(CallError::Output(format!("{total} bytes of requests; at most {}", self.cfg.max_output_bytes)));
        }
        let ids: HashSet<&str> = batch.iter().map(|d| d.id.as_str()).collect();
        let mut seen = HashSet::new();
        for o in &outbounds {
            let host = request_host(&o.request)?;
            if !self.allows_host(&host) {
                return Err(CallError::HostDenied(host));
            }
            for id in &o.deliveries {
                if !ids.contains(id.as_str()) {
                    return Err(CallError::Output(format!("unknown delivery id {id:?}")));
                }
                if !seen.insert(id.clone()) {
                    return Err(CallError::Output(format!("delivery id {id:?} in two requests")));
                }
            }
        }
        let uncovered = batch.iter().filter(|d| !seen.contains(&d.id)).map(|d| d.id.clone()).collect();
        Ok(Built { outbounds, uncovered })
    }

    /// Interpret a response. Outcomes for ids not in `deliveries` are dropped;
    /// deliveries the plugin gave no outcome for are reported as missing by the caller.
    pub fn interpret(&self, ctx: &CallContext, account: &str, deliveries: &[String], response: &Response) -> Result<Vec<Outcome>, CallError> {
        self.interpret_all(ctx, account, &[(deliveries, response)]).pop().expect("one answer per call")
    }

    /// Interpret the responses of one batch on one instance: one slot and one
    /// instantiation for all of them, not one each. Every call still has its
    /// own deadline, and the instance its memory cap; after a call that
    /// fails, the next one gets a fresh instance. One result per call, in order.
    pub fn interpret_all(&self, ctx: &CallContext, account: &str, calls: &[(&[String], &Response)]) -> Vec<Result<Vec<Outcome>, CallError>> {
        let _slot = self.slots.take();
        let mut live: Option<(Store<State>, ChannelPlugin)> = None;
        let mut results = Vec::with_capacity(calls.len());
        for (deliveries, response) in calls {
            let (store, plugin) = match &mut live {
                Some(l) => l,
                None => {
                    let mut store = self.store();
                    match self.pre.instantiate(&mut store) {
                        Ok(p) => live.insert((store, p)),
                        Err(e) => {
                            results.push(Err(CallError::Instantiate(e.root_cause().to_string())));
                            continue;
                        }
                    }
                }
            };
            store.set_epoch_deadline(self.cfg.deadline_ms.max(1));
            match plugin.call_interpret(&mut *store, ctx, account, deliveries, response) {
                Ok(mut outcomes) => {
                    outcomes.retain(|o| deliveries.contains(&o.delivery_id));
                    results.push(Ok(outcomes));
                }
                Err(e) => {
                    results.push(Err(classify(e, self.cfg.deadline_ms, store.data().limits.memory_refused)));
                    live = None;
                }
            }
        }
        results
    }

    pub fn parse_callback(&self, ctx: &CallContext, account: &str, request: &HttpRequest) -> Result<CallbackReply, CallError> {
        self.call(|p, s| p.call_parse_callback(s, ctx, account, request))?.map_err(plugin_error)
    }
}
