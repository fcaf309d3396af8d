//! Palisade's integration tests: one binary (one link step), one module per area. Each
//! test starts the real `palisade` binary; `common` holds the helpers they share.
//!
//! Run one area with a filter: `cargo test -p palisade --test it faults::`. The `otel`
//! module's traces tests need `--features otel`. `docs` checks README.md and `docs/`.

mod common;

mod alerts;
mod attacks;
mod audit;
mod auth_jwt;
mod auth_keys;
mod auth_postgres;
mod authz;
mod check;
mod cli;
mod demo;
mod docs;
mod events;
mod faults;
mod keepalive;
mod logging;
mod openapi;
mod operations;
mod otel;
mod paths;
mod proxy;
mod ratelimit;
mod ratelimit_redis;
mod rotation;
mod secrets;
mod tls;
mod upstream_tls;
mod validation;
mod validation_strict;
