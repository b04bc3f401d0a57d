//! The ECR service (being built).
