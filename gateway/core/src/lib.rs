//! Herald's domain model, the seams every backend implements, and the pure
//! parts of the dispatch pipeline (validation, rendering, batching, retry
//! schedule, ledger arithmetic). No I/O lives here.

pub mod batch;
pub mod billing;
pub mod bills;
pub mod directory;
pub mod error;
pub mod ledger;
pub mod model;
pub mod quiet;
pub mod render;
pub mod retry;
pub mod seams;
pub mod tiered;
pub mod validate;

pub use error::{ApiError, StoreError};

/// Milliseconds since the Unix epoch, the one clock unit used across seams.
pub type Millis = i64;

/// Current wall-clock time in milliseconds.
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}
