//! CQL backends (in progress).
