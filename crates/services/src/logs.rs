//! placeholder, replaced by the logs implementation.
