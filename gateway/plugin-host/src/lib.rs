//! The wasmtime host for channel plugins (`herald:channel@1.x`).
//!
//! - Each plugin is compiled once; its `InstancePre` is cached and every call
//!   gets a fresh `Store` and instance from the pooling allocator, so no state
//!   leaks between calls, tenants or batches.
//! - Plugins get no WASI at all: every import they declare is defined as a trap.
//!   They cannot touch files, sockets, clocks or randomness; the host passes time in.
//! - Every call has an epoch deadline and a memory cap; output is size-checked
//!   and every outbound host is checked against what the plugin declared and
//!   what the operator allows.

mod allow;
mod host;

pub use allow::HostPatterns;
pub use host::{Built, CallError, HostConfig, LoadedPlugin, PluginFault, PluginHost, SyncReport};

/// Bindings of the newest contract. Plugins built against an older 1.x
/// contract load too: the component model matches records and variants by
/// structure and 1.x never changes an existing type or export.
mod base {
    wasmtime::component::bindgen!({
        world: "channel-plugin",
        path: "../../sdk/wit/herald-channel-1.2.0",
        additional_derives: [PartialEq],
    });
}

/// The 1.1 world with access-token functions, for plugins that export them.
mod auth {
    wasmtime::component::bindgen!({
        world: "channel-plugin-auth",
        path: "../../sdk/wit/herald-channel-1.2.0",
        with: { "herald:channel/types": crate::base::herald::channel::types },
    });
}

/// The 1.2 world with `callback-usage`, for plugins that export it.
mod metered {
    wasmtime::component::bindgen!({
        world: "channel-plugin-metered",
        path: "../../sdk/wit/herald-channel-1.2.0",
        with: { "herald:channel/types": crate::base::herald::channel::types },
    });
}

use auth::{ChannelPluginAuth, ChannelPluginAuthPre};
use base::{ChannelPlugin, ChannelPluginPre};
use metered::{ChannelPluginMetered, ChannelPluginMeteredPre};

/// The contract's types, as the gateway uses them.
pub mod types {
    pub use crate::base::herald::channel::types::*;
}
