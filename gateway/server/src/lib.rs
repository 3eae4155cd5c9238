//! The Herald gateway as a library: the HTTP edge (`api`), the dispatch
//! pipeline, and the process wiring (`app`). The binary `herald-gateway` only
//! parses its arguments and runs [`app::run`]; in-process tests drive the same
//! code.

pub mod api;
pub mod app;
pub mod check;
pub mod config;
pub mod dispatch;
pub mod limits;
pub mod metrics;
pub mod plugins_watch;
pub mod redrive;
pub mod seed;
pub mod state;
pub mod transport;
