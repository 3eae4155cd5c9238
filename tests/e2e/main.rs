//! End-to-end tests against the real gateway binary. Run with `make test`.

mod admin;
mod api;
mod bulk_email;
mod cli;
mod delivery;
mod distributed;
mod fairness;
mod faults;
mod harness;
mod plugins;
mod proxy;
mod resilience;
mod sandbox;
mod security;
mod sinks;
mod ssrf;
mod standard_webhooks;
mod telemetry;
mod tiered;
mod uploads;

mod providers;
mod redrive;
