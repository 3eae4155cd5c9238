//! Herald's domain model, the seams every backend implements, and the pure
//! parts of the dispatch pipeline (validation, rendering, batching, retry
//! schedule, ledger arithmetic). No I/O lives here.

pub mod address;
pub mod batch;
pub mod billing;
pub mod bills;
pub mod clock;
pub mod collate;
pub mod directory;
pub mod doc_query;
pub mod docs;
pub mod error;
pub mod i18n;
pub mod ledger;
pub mod model;
pub mod provider_template;
pub mod quiet;
pub mod rbac;
pub mod render;
pub mod retry;
pub mod seams;
pub mod store_query;
pub mod tiered;
pub mod validate;
pub mod wire;

pub use error::{ApiError, ErrorBody, ErrorDetail, StoreError};

/// Milliseconds since the Unix epoch, the one clock unit used across seams.
pub type Millis = i64;

/// Compare a presented token with the expected one in time independent of
/// where they differ (operator tokens).
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// FNV-1a of `s`: the same in every process and version (std's hasher is
/// neither), for picking a shard that other processes must pick too.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub use clock::{Clock, now_ms};
