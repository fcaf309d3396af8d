//! Redis Cluster: detected, not configured (`INFO cluster` answers `cluster_enabled:1`, at
//! config load and on each connection's first call). A script may only touch keys of one
//! slot, and splitting a call per slot would lose its all-or-nothing decision, so in a
//! cluster every key shares ONE hash tag, `palisade:rl:{palisade}:<32 hex>`: all limiter
//! state lives on the shard owning that slot, and each call stays one atomic script. The
//! cluster client routes the script (and `TIME`) to that slot's primary and follows
//! `MOVED`/`ASK` after a failover or resharding.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};

use super::clock::UNKNOWN;
use super::keys::CLUSTER_TAG;
use super::{RedisStore, StoreError, lock};
use crate::quota::gcra::Decision;
use crate::ratelimit::memory::Check;

impl RedisStore {
    /// At config load: learns whether the server is a Redis Cluster node, and refuses a
    /// cluster URL the cluster client cannot use (e.g. a database other than 0), so the
    /// mistake stops the load instead of failing every request. A server that cannot be
    /// reached now is accepted: `on_store_error` covers it until it answers (and the first
    /// call on each connection detects a cluster then).
    pub(crate) async fn check_supported(&self, timeout: Duration) -> Result<(), String> {
        // A connection of its own: the workers' connections live on their own threads.
        let info = async {
            let mut connection = self.probe.get_multiplexed_async_connection().await?;
            redis::cmd("INFO")
                .arg("cluster")
                .query_async::<String>(&mut connection)
                .await
        };
        match tokio::time::timeout(timeout, info).await {
            Ok(Ok(info)) if cluster_enabled(&info) => self.use_cluster().map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// Whether decisions go to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster.load(Ordering::Relaxed)
    }

    /// Switches to cluster mode (for good), unless the URL cannot seed a cluster client.
    pub(super) fn use_cluster(&self) -> Result<(), &str> {
        self.cluster_client.as_ref().map_err(String::as_str)?;
        if !self.cluster.swap(true, Ordering::Relaxed) {
            tracing::info!(
                event = "rate_limit_store_cluster",
                store = %self.display,
                "the rate-limit store is a Redis Cluster: every key shares the hash tag {CLUSTER_TAG}"
            );
        }
        Ok(())
    }

    /// One call to a Redis Cluster, on this worker's cluster connection: the script and
    /// `TIME` both go to the primary owning the slot of `CLUSTER_TAG`, so the deadline is
    /// placed on the clock of the node that runs the script.
    pub(super) async fn cluster_exchange(
        &self,
        worker: usize,
        checks: &[Check<'_>],
        started: i64,
        timeout_us: i64,
    ) -> Result<Vec<Decision>, StoreError> {
        let clock = &self.clocks[worker];
        let existing = lock(&self.clusters[worker]).clone();
        let mut connection = match existing {
            Some(connection) => connection,
            None => {
                let client = self
                    .cluster_client
                    .as_ref()
                    .map_err(|e| StoreError::Failed(e.clone()))?;
                let connection = client.get_async_connection().await.map_err(|e| {
                    StoreError::Failed(format!("cannot connect to the Redis Cluster: {e}"))
                })?;
                *lock(&self.clusters[worker]) = Some(connection.clone());
                connection
            }
        };
        let mut known = lock(clock).offset;
        if known == UNKNOWN {
            let sent = self.local_us();
            let route =
                SingleNodeRoutingInfo::SpecificNode(Route::with_key(CLUSTER_TAG, SlotAddr::Master));
            let values = connection
                .route_pipeline(redis::pipe().cmd("TIME").clone(), 0, 1, route)
                .await
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            let received = self.local_us();
            let time: (i64, i64) = values
                .first()
                .ok_or_else(|| StoreError::Failed("TIME answered nothing".to_owned()))
                .and_then(|v| {
                    redis::from_redis_value_ref(v).map_err(|e| StoreError::Failed(e.to_string()))
                })?;
            let redis_now = time.0.saturating_mul(1_000_000).saturating_add(time.1);
            known = lock(clock).set(redis_now, sent, received);
        }
        self.run_script(
            &mut connection,
            clock,
            checks,
            started,
            timeout_us,
            known,
            true,
        )
        .await
    }
}

/// Whether an `INFO cluster` answer says the server is a cluster node.
pub(super) fn cluster_enabled(info: &str) -> bool {
    info.lines().any(|l| l.trim() == "cluster_enabled:1")
}

/// A cluster client seeded with the configured node. Its own timeouts and retries are
/// short: the gateway's `store_timeout` and circuit decide how long a request waits.
pub(super) fn cluster_client(url: &str, display: &str) -> Result<ClusterClient, String> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)
        .map_err(|e| format!("invalid Redis URL {display}: {e}"))?;
    if info.redis_settings().db() != 0 {
        return Err(format!(
            "{display} is a Redis Cluster node, and a cluster has only database 0: \
             drop the database number from `rate_limit.store`"
        ));
    }
    ClusterClient::builder([url])
        .retries(3)
        .max_retry_wait(100)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| format!("cannot use {display} as a Redis Cluster seed: {e}"))
}

/// `client`'s server and credentials, database 0.
pub(super) fn probe_client(client: &redis::Client) -> redis::Client {
    let info = client.get_connection_info().clone();
    let settings = info.redis_settings().clone().set_db(0);
    redis::Client::open(info.set_redis_settings(settings)).unwrap_or_else(|_| client.clone())
}
