//! Guest SDK for Herald channel plugins.
//!
//! A Herald channel plugin is a WebAssembly component (target `wasm32-wasip2`)
//! that implements the `herald:channel@1.2.0` contract
//! (`sdk/wit/herald-channel-1.2.0/channel.wit`; hosts load 1.0 and 1.1 plugins too). It is a pure translator: it
//! turns a batch of deliveries into outbound HTTP or SMTP requests and turns the
//! provider's answer into one outcome per delivery. The host does all I/O.
//!
//! To write a plugin, implement [`Plugin`] on a unit struct and call
//! [`export_plugin!`] once:
//!
//! ```ignore
//! use herald_plugin_sdk::types::*;
//! use herald_plugin_sdk::{export_plugin, http, outcome, Plugin};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn describe() -> PluginInfo { /* ... */ }
//!     fn validate_account(account: &str) -> Result<(), PluginError> { /* ... */ }
//!     fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>)
//!         -> Result<Vec<Outbound>, PluginError> { /* ... */ }
//!     fn interpret(ctx: CallContext, account: &str, deliveries: Vec<String>, response: Response)
//!         -> Vec<Outcome> { /* ... */ }
//! }
//!
//! export_plugin!(Echo);
//! ```
//!
//! Sandbox rules (enforced by the host, which traps the plugin otherwise): no
//! WASI clock, randomness, filesystem, network or stdio. Never call
//! `SystemTime::now`, never print (`println!` traps). `HashMap` works: the
//! host provides `wasi:random/insecure-seed`, the one WASI function plugins
//! get. The current time is [`types::CallContext::now_ms`].
//!
//! Providers that need an access token (WeCom apps, DingTalk corp apps)
//! implement [`Plugin::token_request`], [`Plugin::parse_token`] and
//! [`Plugin::token_expired`]; the host caches the token per account and passes
//! it to `build` as the account field `"$token"` ([`json::token`]).
//!
//! Providers that report usage only after the send (a voice call's duration)
//! implement [`Plugin::callback_usage`]: the units a delivery report states in
//! total, e.g. [`time::started_minutes`]; the host bills what exceeds the
//! units billed at send, once per delivery.
//!
//! The helper modules are small and independent: [`json`] (account parsing),
//! [`sign`] (HMAC, hashes, encodings, constant-time comparison), [`http`]
//! (requests, response headers, RFC 3986 percent-encoding), [`outbound`]
//! (`Outbound` constructors, one request per delivery), [`outcome`] (outcome
//! constructors, the conventional HTTP status mapping, HTTP-only
//! interpretation), [`token`] (`errcode`-style access-token answers),
//! [`sms`] (GSM 03.38 / UCS-2 segment counting for SMS billing) and [`time`]
//! (RFC 3339 / RFC 2822 formatting without a clock crate).

#![warn(missing_docs)]

pub mod http;
pub mod json;
pub mod outbound;
pub mod outcome;
pub mod sign;
pub mod sms;
pub mod time;
pub mod token;

pub use serde;
pub use serde_json;

use types::*;

/// Generated bindings and glue used by [`export_plugin!`]. Not a public API.
#[doc(hidden)]
pub mod __private {
    /// `wit-bindgen` output for the `channel-plugin` world.
    #[allow(missing_docs, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            world: "channel-plugin-metered",
            path: "../wit/herald-channel-1.2.0",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "$crate::__private::bindings",
            additional_derives: [PartialEq],
        });
    }

    use super::Plugin;
    use crate::types::*;
    use core::marker::PhantomData;

    /// Forwards the generated `Guest` trait to a [`Plugin`] implementation.
    pub struct Adapter<P>(PhantomData<P>);

    impl<P: Plugin> bindings::Guest for Adapter<P> {
        fn describe() -> PluginInfo {
            P::describe()
        }
        fn validate_account(account: String) -> Result<(), PluginError> {
            P::validate_account(&account)
        }
        fn build(ctx: CallContext, account: String, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError> {
            P::build(ctx, &account, batch)
        }
        fn interpret(ctx: CallContext, account: String, deliveries: Vec<String>, response: Response) -> Vec<Outcome> {
            P::interpret(ctx, &account, deliveries, response)
        }
        fn parse_callback(ctx: CallContext, account: String, request: HttpRequest) -> Result<CallbackReply, PluginError> {
            P::parse_callback(ctx, &account, request)
        }
        fn token_request(ctx: CallContext, account: String) -> Option<HttpRequest> {
            P::token_request(ctx, &account)
        }
        fn parse_token(ctx: CallContext, account: String, response: HttpResponse) -> Result<AccessToken, PluginError> {
            P::parse_token(ctx, &account, response)
        }
        fn token_expired(response: Response) -> bool {
            P::token_expired(response)
        }
        fn callback_usage(ctx: CallContext, account: String, request: HttpRequest) -> Result<Vec<Usage>, PluginError> {
            P::callback_usage(ctx, &account, request)
        }
    }
}

/// The contract's data types (`herald:channel/types@1.2.0`), as Rust types.
///
/// Records are plain structs with public fields (WIT `kebab-case` becomes
/// `snake_case`), variants and enums are Rust enums (`PluginError::BadConfig`,
/// `OutcomeKind::Sent`, `Request::Http`, `TlsMode::Starttls`, ...). All derive
/// `Clone`, `Debug` and `PartialEq`.
pub mod types {
    pub use crate::__private::bindings::herald::channel::types::{
        AccessToken, CallContext, CallbackReply, ContentFormat, Delivery, HttpRequest, HttpResponse, Outbound, Outcome, OutcomeKind, PluginError,
        PluginInfo, Receipt, ReceiptStatus, Request, Response, SmtpMessage, SmtpRelay, SmtpReply, TlsMode, Usage,
    };
}

/// A channel plugin. Implement it on a unit struct and export it with
/// [`export_plugin!`]. Every function is called on a fresh or reused instance;
/// keep no state between calls.
pub trait Plugin {
    /// Static facts about the plugin (name, channel, formats, batch size,
    /// account JSON Schema, secret fields, hosts, billing unit). Called once at load.
    fn describe() -> PluginInfo;

    /// Static checks of an account configuration (a JSON object). Return
    /// `PluginError::BadConfig` with a message naming the bad field
    /// ([`json::parse_account`] does most of it).
    fn validate_account(account: &str) -> Result<(), PluginError>;

    /// Turn a batch of at most `max-batch` deliveries into outbound requests.
    /// Every delivery id must appear in exactly one [`Outbound`].
    fn build(ctx: CallContext, account: &str, batch: Vec<Delivery>) -> Result<Vec<Outbound>, PluginError>;

    /// Turn the answer to one outbound into one [`Outcome`] per delivery id it
    /// carried (`deliveries`, in the order of the outbound).
    fn interpret(ctx: CallContext, account: &str, deliveries: Vec<String>, response: Response) -> Vec<Outcome>;

    /// Parse a provider callback (delivery report, read receipt). The default
    /// answers `PluginError::Internal("callbacks not supported")`.
    fn parse_callback(ctx: CallContext, account: &str, request: HttpRequest) -> Result<CallbackReply, PluginError> {
        let _ = (ctx, account, request);
        Err(PluginError::Internal("callbacks not supported".into()))
    }

    /// The request that obtains an access token for this account, or `None`
    /// (the default) when the provider needs none.
    fn token_request(ctx: CallContext, account: &str) -> Option<HttpRequest> {
        let _ = (ctx, account);
        None
    }

    /// Read the access token from the provider's answer to `token_request`.
    fn parse_token(ctx: CallContext, account: &str, response: HttpResponse) -> Result<AccessToken, PluginError> {
        let _ = (ctx, account, response);
        Err(PluginError::Internal("access tokens not supported".into()))
    }

    /// Whether a provider answer rejected the token as expired or invalid; the
    /// host then fetches a new one and retries once. Default: never.
    fn token_expired(response: Response) -> bool {
        let _ = response;
        false
    }

    /// The billable units a provider callback reports per delivery, in total
    /// (contract 1.2; e.g. a call's started minutes, [`time::started_minutes`]).
    /// The host calls it after [`Plugin::parse_callback`] accepted the same
    /// request and bills what exceeds the units billed at send, once. The
    /// default reports nothing.
    fn callback_usage(ctx: CallContext, account: &str, request: HttpRequest) -> Result<Vec<Usage>, PluginError> {
        let _ = (ctx, account, request);
        Ok(vec![])
    }
}

/// Export a [`Plugin`] implementation as the component's `channel-plugin`
/// world. Use it exactly once per plugin crate, with the plugin type:
///
/// ```ignore
/// herald_plugin_sdk::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            type HeraldPluginExports = $crate::__private::Adapter<$plugin>;
            $crate::__private::bindings::export!(
                HeraldPluginExports with_types_in $crate::__private::bindings
            );
        };
    };
}

impl Delivery {
    /// The metadata value for `key`; when the key appears more than once the
    /// last value wins, as in a map built from the list.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl Usage {
    /// `units` in total for the delivery the provider knows as `provider_id`.
    pub fn for_provider_id(provider_id: impl Into<String>, units: u32) -> Self {
        Usage { delivery_id: None, provider_id: Some(provider_id.into()), units }
    }
}

impl Outcome {
    /// Set the provider's message id (used to match delivery reports).
    pub fn with_provider_id(mut self, provider_id: impl Into<String>) -> Self {
        self.provider_id = Some(provider_id.into());
        self
    }

    /// Set the provider's Retry-After, in milliseconds.
    pub fn with_retry_after_ms(mut self, retry_after_ms: Option<u64>) -> Self {
        self.retry_after_ms = retry_after_ms;
        self
    }

    /// Set the billable units consumed (0 means 1).
    pub fn with_units(mut self, units: u32) -> Self {
        self.units = units;
        self
    }
}
