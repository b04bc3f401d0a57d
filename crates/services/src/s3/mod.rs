//! The s3 service (being built).
