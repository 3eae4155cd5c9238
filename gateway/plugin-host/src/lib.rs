//! The wasmtime host for channel plugins (`herald:channel@1.0.0`).
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
pub use host::{CallError, HostConfig, LoadedPlugin, PluginHost, Built};

wasmtime::component::bindgen!({
    world: "channel-plugin",
    path: "../../sdk/wit/herald-channel-1.0.0",
});

/// The contract's types, as the gateway uses them.
pub mod types {
    pub use crate::herald::channel::types::*;
}
