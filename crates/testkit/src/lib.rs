//! Test-only helpers for Palisade's integration tests.
//!
//! Nothing here is mocked that can be run for real: certificates are generated at test time,
//! the upstream is a real HTTP/1.1 + HTTP/2 server, and the gateway is the real binary.
//!
//! - [`pki`]: a throw-away CA and server certificate (rcgen), rustls client/server configs;
//! - [`upstream`]: [`RecordingUpstream`], which records exactly what reached it;
//! - [`raw`]: byte-exact HTTP/1.1 and TLS probes for path, smuggling and slowloris tests;
//! - [`gateway`]: [`GatewayProcess`], which launches `palisade serve` and reads its logs;
//! - [`config`]: [`TestConfig`], the config most tests start from, with a shared admin token
//!   and key pepper;
//! - [`redis`]: [`RedisServer`], a throw-away `redis-server` with a minimal RESP client, and
//!   [`RedisCluster`], several of them joined into a Redis Cluster;
//! - [`ports`]: ports reserved across processes for the servers started on a chosen port;
//! - [`secrets`]: the secrets tests hand to palisade, searched for in all it writes.

pub mod config;
pub mod gateway;
pub mod jwks;
pub mod pki;
pub mod ports;
pub mod postgres;
pub mod raw;
pub mod redis;
pub mod secrets;
pub mod upstream;

pub use config::TestConfig;
pub use gateway::{GatewayBuilder, GatewayProcess};
pub use pki::TestPki;
pub use postgres::PostgresServer;
pub use raw::{HandshakeOutcome, RawConnection, RawResponse};
pub use redis::{RedisCluster, RedisServer};
pub use upstream::{Recorded, RecordingUpstream};
