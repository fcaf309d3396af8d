//! The shared store for rate-limit state: Redis, one atomic script per decision.
//!
//! Why a script: every check of one call (the policies of one pipeline phase, a lockout)
//! is read, decided and written inside Redis in one round trip, so two gateways can never
//! both admit the last request of a quota. Why Redis's clock (`TIME`): instances with
//! skewed clocks would otherwise disagree on every TAT. Keys expire by themselves once
//! their TAT has passed (they then decide exactly like a key never seen), so Redis holds
//! only clients that are currently constrained. Works with Redis 6+ (scripts replicate
//! their effects, so `TIME` before a write is allowed).
//!
//! Failure is reported, never hidden or waited out: `check_all` returns an error on a
//! timeout or a broken connection, and after a failure the store is skipped for
//! `RETRY_INTERVAL` (no request waits on a dead Redis), then tried again by the next
//! request; the connection manager reconnects in the background.
//!
//! This file holds the store: its connections (one per worker), the call with its timeout
//! and the circuit that rests the store after a failure. The rest, one concern a file:
//! - `script`: the Lua script that decides a call, its invocation and its answer;
//! - `clock`: each connection's offset to Redis's clock, which places a script's deadline;
//! - `keys`: key names, digests of the buckets;
//! - `cluster`: Redis Cluster, detected rather than configured, and its connections.

mod clock;
mod cluster;
mod keys;
mod script;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use self::clock::{ClockSync, UNKNOWN};
use self::cluster::{cluster_client, probe_client};
use self::script::SCRIPT;
use super::memory::Check;
use crate::quota::gcra::Decision;

/// How long the store is skipped after a failure before it is tried again.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Why a call to the store gave no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// No answer within the store timeout.
    Timeout,
    /// The connection failed or Redis answered with an error.
    Failed(String),
    /// Skipped: the store failed less than `RETRY_INTERVAL` ago.
    Resting,
}

impl StoreError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Failed(_) => "error",
            StoreError::Resting => "resting",
        }
    }
}

/// A Redis rate-limit store. Cheap to share; kept across reloads while its URL is unchanged.
pub(crate) struct RedisStore {
    /// The URL as configured (it may carry a password: never logged).
    url: String,
    /// The URL without credentials, for logs.
    display: String,
    /// For one-off connections (`check_supported`), apart from the workers' own. It selects
    /// no database (a cluster node refuses any but 0), so it can tell a cluster node apart.
    probe: redis::Client,
    /// One connection per worker (`workers`): a decision is sent and answered on the thread
    /// that serves the request, never handed to another worker's connection.
    managers: Box<[ConnectionManager]>,
    /// Set once the server was seen to be a Redis Cluster node: from then on decisions go
    /// through `clusters`, with cluster key names.
    cluster: AtomicBool,
    /// The same URL as a cluster seed (parsed up front; no connection until needed), or
    /// why it cannot be one.
    cluster_client: Result<ClusterClient, String>,
    /// Per worker, the cluster connection, made on first use (until one is made, each call
    /// tries again). Once made it is kept: the cluster client reconnects to nodes, refreshes
    /// its slot map and falls back to the seed node by itself.
    clusters: Box<[std::sync::Mutex<Option<ClusterConnection>>]>,
    /// Per connection: Redis's clock minus ours (`UNKNOWN` until learned).
    clocks: Box<[std::sync::Mutex<ClockSync>]>,
    script: redis::Script,
    health: Health,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.display)
            .finish()
    }
}

/// Circuit state: when the store may be tried again, and whether it is failing (so that
/// the transitions, not every failed call, are logged).
struct Health {
    epoch: Instant,
    resting_until_ms: AtomicU64,
    failing: AtomicBool,
}

impl RedisStore {
    /// Prepares the store; connects lazily, on the first decision, so a gateway starts
    /// (and falls back as configured) even when Redis is down.
    pub(crate) fn connect(url: &str) -> Result<Arc<RedisStore>, String> {
        let display = without_credentials(url);
        let client =
            redis::Client::open(url).map_err(|e| format!("invalid Redis URL {display}: {e}"))?;
        // One reconnection attempt per failure: the gateway's own circuit decides when to
        // try again, so the manager must not queue requests behind long backoffs.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let managers: Box<[ConnectionManager]> = (0..crate::workers::count())
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot set up Redis at {display}: {e}"))?;
        let cluster_client = cluster_client(url, &display);
        Ok(Arc::new(RedisStore {
            url: url.to_owned(),
            probe: probe_client(&client),
            clocks: (managers.iter())
                .map(|_| std::sync::Mutex::new(ClockSync::UNKNOWN))
                .collect(),
            cluster: AtomicBool::new(false),
            cluster_client,
            clusters: managers
                .iter()
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
            display,
            managers,
            script: redis::Script::new(SCRIPT),
            health: Health {
                epoch: Instant::now(),
                resting_until_ms: AtomicU64::new(0),
                failing: AtomicBool::new(false),
            },
        }))
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Decides every check of one call (one pipeline phase) in one script, within `timeout`.
    pub(crate) async fn check_all(
        &self,
        checks: &[Check<'_>],
        timeout: Duration,
    ) -> Result<Vec<Decision>, StoreError> {
        if self.elapsed_ms() < self.health.resting_until_ms.load(Ordering::Relaxed) {
            return Err(StoreError::Resting);
        }
        self.call(checks, timeout).await
    }

    /// Like `check_all`, but tried even while the store rests after a failure: for refunds,
    /// which are rare and would otherwise be lost right when a later call failed.
    pub(crate) async fn call(
        &self,
        checks: &[Check<'_>],
        timeout: Duration,
    ) -> Result<Vec<Decision>, StoreError> {
        let worker = crate::workers::current() % self.managers.len();
        let mut connection = self.managers[worker].clone();
        let clock = &self.clocks[worker];
        let started = self.local_us();
        let timeout_us = i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
        let exchange = async {
            let mut known = lock(clock).offset;
            if known == UNKNOWN && !self.is_cluster() {
                known = self.learn_offset(&mut connection, clock).await?;
            }
            if self.is_cluster() {
                return self
                    .cluster_exchange(worker, checks, started, timeout_us)
                    .await;
            }
            self.run_script(
                &mut connection,
                clock,
                checks,
                started,
                timeout_us,
                known,
                false,
            )
            .await
        };
        let decisions = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(answer) => answer,
        };
        match &decisions {
            Ok(_) => self.recovered(),
            Err(error) => {
                // A broken connection is re-established by the manager (or the cluster
                // client), maybe to another server (a failover): learn the clock again.
                if matches!(error, StoreError::Failed(_)) {
                    *lock(clock) = ClockSync::UNKNOWN;
                }
                self.failed(error)
            }
        }
        decisions
    }

    /// Microseconds on this process's monotonic clock.
    fn local_us(&self) -> i64 {
        i64::try_from(self.health.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.health.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn failed(&self, error: &StoreError) {
        let retry_at = self.elapsed_ms() + RETRY_INTERVAL.as_millis() as u64;
        self.health
            .resting_until_ms
            .store(retry_at, Ordering::Relaxed);
        if !self.health.failing.swap(true, Ordering::Relaxed) {
            let detail = match error {
                StoreError::Failed(message) => message.as_str(),
                StoreError::Timeout => "no answer within the store timeout",
                StoreError::Resting => "",
            };
            tracing::warn!(
                event = "rate_limit_store_unavailable",
                store = %self.display,
                reason = error.kind(),
                error = detail,
                "rate-limit store failing; on_store_error applies until it answers again"
            );
        }
    }

    fn recovered(&self) {
        if self.health.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                event = "rate_limit_store_recovered",
                store = %self.display,
            );
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `redis://user:secret@host:6379/0` → `redis://***@host:6379/0`.
pub(crate) fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
