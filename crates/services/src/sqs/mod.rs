//! The sqs service (being built).
