//! placeholder, replaced by the sts implementation.
