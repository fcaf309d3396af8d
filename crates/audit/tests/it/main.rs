//! The auditor's integration tests: one binary (one link step), one module per area.

mod checks;
mod repo;
mod tls;
