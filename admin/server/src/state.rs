//! What every handler and task of the admin service holds (a leaf: it imports
//! no handler and no wiring).

use std::sync::Arc;

use herald_service::{Deps, Services};

use crate::config::Config;

pub struct App {
    pub cfg: Config,
    /// Backends, plugin catalogue, sealer and clock (the handle the rules hold too).
    pub deps: Deps,
    /// The rules pushes are submitted through (the gateway's intake).
    pub services: Arc<Services>,
}
