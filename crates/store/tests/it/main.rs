//! The key store's integration tests: one binary (one link step). `common` is the suite
//! shared by both backends; each backend module runs it and adds its own cases.

mod common;

mod postgres;
mod sqlite;
