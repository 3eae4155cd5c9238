//! End-to-end tests against the real gateway binary. Run with `make test`.

mod admin;
mod api;
mod delivery;
mod distributed;
mod harness;
mod plugins;
mod resilience;
mod sandbox;
mod sinks;
mod tiered;

mod providers;
mod redrive;
