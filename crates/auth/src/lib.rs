//! SigV4 verification and IAM policy evaluation (placeholder until built).
