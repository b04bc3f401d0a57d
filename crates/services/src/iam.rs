//! placeholder, replaced by the iam implementation.
