//! Driver errors → `StoreError`.
//!
//! "Try again later" failures (no connection, client or server timeouts, not
//! enough live replicas, overload, bootstrapping nodes) become
//! `StoreError::Unavailable`, which the edge answers with 503 + Retry-After.
//! Everything else (bad CQL, schema/type mismatches, auth, server bugs,
//! read/write *failures* such as a tombstone overflow) is `StoreError::Backend`:
//! retrying would not help.

use std::fmt::Display;

use herald_core::StoreError;
use scylla::errors::{
    ConnectionPoolError, DbError, ExecutionError, MetadataError, NewSessionError, NextPageError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RequestError, SchemaAgreementError, UseKeyspaceError,
};

/// Whether a driver error is transient (worth retrying later).
pub(crate) trait Classify: Display {
    fn transient(&self) -> bool;
}

/// Map any classified driver error to a `StoreError`.
pub(crate) fn cql<E: Classify>(e: E) -> StoreError {
    if e.transient() { StoreError::Unavailable(e.to_string()) } else { StoreError::Backend(e.to_string()) }
}

/// A row that did not decode into the expected types: the schema and the code disagree.
pub(crate) fn decode<E: Display>(e: E) -> StoreError {
    StoreError::Backend(format!("decoding a CQL result: {e}"))
}

fn db_transient(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::RateLimitReached { .. }
    )
}

impl Classify for RequestAttemptError {
    fn transient(&self) -> bool {
        match self {
            RequestAttemptError::UnableToAllocStreamId | RequestAttemptError::BrokenConnectionError(_) => true,
            RequestAttemptError::DbError(db, _) => db_transient(db),
            _ => false,
        }
    }
}

impl Classify for ConnectionPoolError {
    fn transient(&self) -> bool {
        // Broken pool, pool still connecting, node filtered out: no node to talk to.
        true
    }
}

impl Classify for PrepareError {
    fn transient(&self) -> bool {
        match self {
            PrepareError::ConnectionPoolError(_) => true,
            PrepareError::AllAttemptsFailed { first_attempt } => first_attempt.transient(),
            _ => false,
        }
    }
}

impl Classify for MetadataError {
    fn transient(&self) -> bool {
        matches!(self, MetadataError::ConnectionPoolError(_) | MetadataError::FetchError(_))
    }
}

impl Classify for SchemaAgreementError {
    fn transient(&self) -> bool {
        match self {
            SchemaAgreementError::ConnectionPoolError(_) | SchemaAgreementError::Timeout(_) => true,
            SchemaAgreementError::RequestError(a) => a.transient(),
            SchemaAgreementError::PrepareError(p) => p.transient(),
            _ => false,
        }
    }
}

impl Classify for UseKeyspaceError {
    fn transient(&self) -> bool {
        match self {
            UseKeyspaceError::RequestError(a) => a.transient(),
            UseKeyspaceError::RequestTimeout(_) => true,
            _ => false,
        }
    }
}

impl Classify for ExecutionError {
    fn transient(&self) -> bool {
        match self {
            ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) | ExecutionError::RequestTimeout(_) => true,
            ExecutionError::LastAttemptError(a) => a.transient(),
            ExecutionError::PrepareError(p) => p.transient(),
            ExecutionError::UseKeyspaceError(u) => u.transient(),
            ExecutionError::SchemaAgreementError(s) => s.transient(),
            ExecutionError::MetadataError(m) => m.transient(),
            _ => false,
        }
    }
}

impl Classify for RequestError {
    fn transient(&self) -> bool {
        match self {
            RequestError::EmptyPlan | RequestError::ConnectionPoolError(_) | RequestError::RequestTimeout(_) => true,
            RequestError::LastAttemptError(a) => a.transient(),
            _ => false,
        }
    }
}

impl Classify for NextPageError {
    fn transient(&self) -> bool {
        match self {
            NextPageError::RequestFailure(r) => r.transient(),
            _ => false,
        }
    }
}

impl Classify for NextRowError {
    fn transient(&self) -> bool {
        match self {
            NextRowError::NextPageError(p) => p.transient(),
            _ => false,
        }
    }
}

impl Classify for PagerExecutionError {
    fn transient(&self) -> bool {
        match self {
            PagerExecutionError::PrepareError(p) => p.transient(),
            PagerExecutionError::NextPageError(p) => p.transient(),
            PagerExecutionError::UseKeyspaceError(u) => u.transient(),
            PagerExecutionError::SchemaAgreementError(s) => s.transient(),
            PagerExecutionError::MetadataError(m) => m.transient(),
            _ => false,
        }
    }
}

impl Classify for NewSessionError {
    fn transient(&self) -> bool {
        match self {
            // DNS not answering, or no contact point reachable.
            NewSessionError::FailedToResolveAnyHostname(_) => true,
            NewSessionError::MetadataError(m) => m.transient(),
            NewSessionError::UseKeyspaceError(u) => u.transient(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::statement::Consistency;

    use super::*;

    #[test]
    fn timeouts_and_unavailable_are_transient() {
        assert!(matches!(cql(ExecutionError::RequestTimeout(Duration::from_secs(1))), StoreError::Unavailable(_)));
        assert!(matches!(cql(ExecutionError::EmptyPlan), StoreError::Unavailable(_)));
        let unavailable = DbError::Unavailable { consistency: Consistency::LocalQuorum, required: 2, alive: 1 };
        let e = ExecutionError::LastAttemptError(RequestAttemptError::DbError(unavailable, "x".into()));
        assert!(matches!(cql(e), StoreError::Unavailable(_)));
        let e = ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::Overloaded, "x".into()));
        assert!(matches!(cql(e), StoreError::Unavailable(_)));
        let e = ExecutionError::ConnectionPoolError(ConnectionPoolError::Initializing);
        assert!(matches!(cql(e), StoreError::Unavailable(_)));
    }

    #[test]
    fn bad_requests_are_backend_errors() {
        let e = ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::SyntaxError, "bad".into()));
        assert!(matches!(cql(e), StoreError::Backend(_)));
        let e = ExecutionError::LastAttemptError(RequestAttemptError::DbError(DbError::Invalid, "bad".into()));
        assert!(matches!(cql(e), StoreError::Backend(_)));
        assert!(matches!(cql(NewSessionError::EmptyKnownNodesList), StoreError::Backend(_)));
    }
}
