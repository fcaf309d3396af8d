//! The shared store for rate-limit state: Redis, one atomic script per decision.
//!
//! Why a script: every check of one call (the policies of one pipeline phase, a lockout)
//! is read, decided and written inside Redis in one round trip, so two gateways can never
//! both admit the last request of a quota. Why Redis's clock (`TIME`): instances with
//! skewed clocks would otherwise disagree on every TAT. Keys expire by themselves once
//! their TAT has passed (they then decide exactly like a key never seen), so Redis holds
//! only clients that are currently constrained.
//!
//! Why a deadline: a call the gateway gave up on (no answer within `store_timeout`) may
//! still sit in a stalled Redis's backlog and run later, charging a request that was
//! answered without it. Each script carries the gateway's give-up time on Redis's clock
//! and writes nothing past it. Each connection learns its offset to Redis's clock with
//! `TIME` on first use (and after a failure), then from the `now` answers carry, to within
//! half a round trip: only from answers whose round trip was short (within `RTT_MARGIN` of
//! the shortest seen, or any under the timeout once the last sample is `REFRESH` old), as
//! a worker that stalls after the reply arrived makes a long round trip and a too-small
//! offset. An answer that says the deadline had passed although it came within the
//! caller's budget shows the offset was wrong, not that Redis was slow: the offset is
//! taken from it and the call retried once, within the same budget, instead of resting
//! the store.
//!
//! Key names are `palisade:rl:{<32 hex>}`: a digest of the bucket, so no client address,
//! header value or account name is stored in the clear and key length is fixed. Works with
//! Redis 6+ (scripts replicate their effects, so `TIME` before a write is allowed).
//!
//! Redis Cluster: detected, not configured (`INFO cluster` answers `cluster_enabled:1`, at
//! config load and on each connection's first call). A script may only touch keys of one
//! slot, and splitting a call per slot would lose its all-or-nothing decision, so in a
//! cluster every key shares ONE hash tag, `palisade:rl:{palisade}:<32 hex>`: all limiter
//! state lives on the shard owning that slot, and each call stays one atomic script. The
//! cluster client routes the script (and `TIME`) to that slot's primary and follows
//! `MOVED`/`ASK` after a failover or resharding.
//!
//! Failure is reported, never hidden or waited out: `check_all` returns an error on a
//! timeout or a broken connection, and after a failure the store is skipped for
//! `RETRY_INTERVAL` (no request waits on a dead Redis), then tried again by the next
//! request; the connection manager reconnects in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};

use super::memory::{Check, Op};
use crate::quota::gcra::Decision;

/// How long the store is skipped after a failure before it is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The GCRA of `gcra.rs`, in microseconds of Redis's clock. ARGV[1] is the call's deadline
/// on that clock: a script that runs later (Redis was stalled and ran it from its backlog,
/// after the gateway had given up and answered without it) writes nothing and answers
/// `0, now`. Then, per key, three values: the emission interval T and the tolerance tau
/// (both in nanoseconds, so sub-microsecond intervals keep their precision as Lua doubles)
/// and the operation (`0` take, `1` peek, `2` charge, `3` refund; see `memory::Op`).
/// Answers `1, now`, then three integers per key: `1, remaining, reset_us` when admitted,
/// `0, retry_after_us, reset_us` when refused. `now` lets the caller track its offset to
/// Redis's clock. Doubles hold microseconds since 1970 exactly (< 2^53); TATs are stored
/// with `%.0f` because Lua's `tostring` keeps only 14 digits.
const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if now > tonumber(ARGV[1]) then return {0, now} end
local out, news = {1, now}, {}
local all_admit = true
for i = 1, #KEYS do
  local t = tonumber(ARGV[3 * i - 1]) / 1000
  local tau = tonumber(ARGV[3 * i]) / 1000
  local op = ARGV[3 * i + 1]
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
  local start = math.max(tat, now)
  local new = start + t
  local ahead = new - now
  if ahead <= tau then
    news[i] = new
    out[#out + 1] = 1
    out[#out + 1] = math.floor((tau - ahead) / t)
    out[#out + 1] = math.ceil(ahead)
  else
    news[i] = false
    if op == '0' or op == '1' then all_admit = false end
    out[#out + 1] = 0
    out[#out + 1] = math.ceil(ahead - tau)
    out[#out + 1] = math.ceil(start - now)
  end
end
for i = 1, #KEYS do
  local op = ARGV[3 * i + 1]
  if op == '3' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
    if tat > now then
      local back = math.max(tat - tonumber(ARGV[3 * i - 1]) / 1000, now)
      redis.call('SET', KEYS[i], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000) + 1)
    end
  elseif news[i] and ((op == '0' and all_admit) or op == '2') then
    local ttl = math.ceil((news[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', news[i]), 'PX', ttl)
  end
end
return out
";

/// Why a call to the store gave no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No answer within the store timeout.
    Timeout,
    /// The connection failed or Redis answered with an error.
    Failed(String),
    /// Skipped: the store failed less than `RETRY_INTERVAL` ago.
    Resting,
}

impl StoreError {
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout => "timeout",
            StoreError::Failed(_) => "error",
            StoreError::Resting => "resting",
        }
    }
}

/// A Redis rate-limit store. Cheap to share; kept across reloads while its URL is unchanged.
pub struct RedisStore {
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

/// No offset to Redis's clock learned yet (or the connection failed since).
const UNKNOWN: i64 = i64::MIN;

/// A sample whose round trip is within this of the shortest seen updates the offset.
const RTT_MARGIN_US: i64 = 1_000;
/// Once the offset is this old, any sample under the timeout replaces it (drift, a route
/// that got slower for good).
const REFRESH_US: i64 = 10_000_000;

/// One connection's offset to Redis's clock, in microseconds, from the sample with the
/// shortest round trip (the tightest bound on the offset).
#[derive(Debug, Clone, Copy)]
struct ClockSync {
    offset: i64,
    /// The round trip of the sample the offset came from.
    rtt: i64,
    /// When (our clock) that sample was taken.
    at: i64,
}

impl ClockSync {
    const UNKNOWN: ClockSync = ClockSync {
        offset: UNKNOWN,
        rtt: i64::MAX,
        at: 0,
    };

    /// Takes `redis_now` (read between `sent` and `received`) as the new offset.
    fn set(&mut self, redis_now: i64, sent: i64, received: i64) -> i64 {
        *self = ClockSync {
            offset: redis_now - midpoint(sent, received),
            rtt: received - sent,
            at: received,
        };
        self.offset
    }

    /// Learns from an answer if its round trip makes it at least as good as the offset held.
    fn sample(&mut self, redis_now: i64, sent: i64, received: i64, timeout_us: i64) {
        let rtt = received - sent;
        if rtt >= timeout_us {
            return;
        }
        let stale = received.saturating_sub(self.at) >= REFRESH_US;
        if self.offset == UNKNOWN || stale || rtt <= self.rtt.saturating_add(RTT_MARGIN_US) {
            let best = if stale { rtt } else { rtt.min(self.rtt) };
            self.set(redis_now, sent, received);
            self.rtt = best;
        }
    }
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

/// The one hash tag of every key in a Redis Cluster (see the module doc).
const CLUSTER_TAG: &str = "{palisade}";

impl RedisStore {
    /// Prepares the store; connects lazily, on the first decision, so a gateway starts
    /// (and falls back as configured) even when Redis is down.
    pub fn connect(url: &str) -> Result<Arc<RedisStore>, String> {
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

    pub fn url(&self) -> &str {
        &self.url
    }

    /// At config load: learns whether the server is a Redis Cluster node, and refuses a
    /// cluster URL the cluster client cannot use (e.g. a database other than 0), so the
    /// mistake stops the load instead of failing every request. A server that cannot be
    /// reached now is accepted: `on_store_error` covers it until it answers (and the first
    /// call on each connection detects a cluster then).
    pub async fn check_supported(&self, timeout: Duration) -> Result<(), String> {
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
    pub fn is_cluster(&self) -> bool {
        self.cluster.load(Ordering::Relaxed)
    }

    /// Switches to cluster mode (for good), unless the URL cannot seed a cluster client.
    fn use_cluster(&self) -> Result<(), &str> {
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

    /// Decides every check of one call (one pipeline phase) in one script, within `timeout`.
    pub async fn check_all(
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
    pub async fn call(
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

    /// One call to a Redis Cluster, on this worker's cluster connection: the script and
    /// `TIME` both go to the primary owning the slot of `CLUSTER_TAG`, so the deadline is
    /// placed on the clock of the node that runs the script.
    async fn cluster_exchange(
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

    /// Runs the decision script on `connection` (a server's or the cluster's), with our
    /// give-up time on Redis's clock as its deadline (a script Redis runs after it writes
    /// nothing), `known` being the clock offset; an "expired" answer that came in time
    /// re-learns the offset and is retried once.
    #[allow(clippy::too_many_arguments)]
    async fn run_script(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
        clock: &std::sync::Mutex<ClockSync>,
        checks: &[Check<'_>],
        started: i64,
        timeout_us: i64,
        mut known: i64,
        cluster: bool,
    ) -> Result<Vec<Decision>, StoreError> {
        let mut retried = false;
        loop {
            let deadline = started.saturating_add(timeout_us).saturating_add(known);
            let invocation = self.invocation(checks, deadline, cluster);
            let sent = self.local_us();
            let values: Vec<i64> = invocation
                .invoke_async(connection)
                .await
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            let received = self.local_us();
            match self.note_answer(clock, &values, sent, received, timeout_us) {
                Some(relearned) if !retried => (known, retried) = (relearned, true),
                _ => return parse_answer(&values, checks.len()),
            }
        }
    }

    /// Learns from the `now` of a script's answer. An answer that the deadline had passed
    /// came within the caller's budget (a late one is dropped by the caller's timeout), so
    /// the offset was wrong: it is taken from this answer, returned for one retry.
    fn note_answer(
        &self,
        clock: &std::sync::Mutex<ClockSync>,
        values: &[i64],
        sent: i64,
        received: i64,
        timeout_us: i64,
    ) -> Option<i64> {
        match values {
            [0, redis_now] => Some(lock(clock).set(*redis_now, sent, received)),
            [_, redis_now, ..] => {
                lock(clock).sample(*redis_now, sent, received, timeout_us);
                None
            }
            _ => None,
        }
    }

    /// The script call for `checks`, with cluster or standalone key names.
    fn invocation<'s>(
        &'s self,
        checks: &[Check<'_>],
        deadline: i64,
        cluster: bool,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(deadline.to_string());
        for check in checks {
            let interval = check.quota.emission_interval().as_nanos();
            let tau = interval.saturating_mul(u128::from(check.quota.burst));
            let op = match check.op {
                Op::Take => "0",
                Op::Peek => "1",
                Op::Charge => "2",
                Op::Refund => "3",
            };
            let key = if cluster {
                cluster_key(check.key)
            } else {
                bucket_key(check.key)
            };
            invocation
                .key(key)
                .arg(interval.to_string())
                .arg(tau.to_string())
                .arg(op);
        }
        invocation
    }

    /// The first call on a connection (or after it failed): Redis's `TIME`, to place the
    /// script's deadline on Redis's clock (to within half this round trip), and
    /// `INFO cluster`, to detect a cluster node, in one round trip. On a cluster node the
    /// store switches to cluster mode and the offset is learned again from the slot's owner.
    async fn learn_offset(
        &self,
        connection: &mut ConnectionManager,
        clock: &std::sync::Mutex<ClockSync>,
    ) -> Result<i64, StoreError> {
        let sent = self.local_us();
        let (time, info): ((i64, i64), String) = redis::pipe()
            .cmd("TIME")
            .cmd("INFO")
            .arg("cluster")
            .query_async(connection)
            .await
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        let received = self.local_us();
        if cluster_enabled(&info) {
            self.use_cluster()
                .map_err(|e| StoreError::Failed(e.to_owned()))?;
            return Ok(UNKNOWN);
        }
        let redis_now = time.0.saturating_mul(1_000_000).saturating_add(time.1);
        Ok(lock(clock).set(redis_now, sent, received))
    }

    /// Shifts every learned offset by `by_us` (tests: a wrong offset).
    #[cfg(test)]
    fn skew_offsets(&self, by_us: i64) {
        for clock in &self.clocks {
            let mut clock = lock(clock);
            if clock.offset != UNKNOWN {
                clock.offset += by_us;
            }
        }
    }

    #[cfg(test)]
    fn offsets(&self) -> Vec<i64> {
        (self.clocks.iter())
            .map(|c| lock(c).offset)
            .filter(|o| *o != UNKNOWN)
            .collect()
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

/// Turns the script's flat answer into decisions; anything malformed is a store failure.
/// An answer that the deadline had passed (still so after the retry with the offset it
/// taught, see `note_answer`) is a timeout.
fn parse_answer(values: &[i64], expected: usize) -> Result<Vec<Decision>, StoreError> {
    match values {
        [0, _] => return Err(StoreError::Timeout),
        [1, _, rest @ ..] if rest.len() == expected * 3 => {}
        _ => {
            return Err(StoreError::Failed(format!(
                "the script answered {} values for {expected} keys",
                values.len()
            )));
        }
    }
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    Ok(values[2..]
        .chunks_exact(3)
        .map(|chunk| {
            let (admitted, first, reset) = (chunk[0], chunk[1], micros(chunk[2]));
            if admitted == 1 {
                Decision::Allow {
                    remaining: u32::try_from(first).unwrap_or(u32::MAX),
                    reset,
                }
            } else {
                Decision::Deny {
                    retry_after: micros(first),
                    reset,
                }
            }
        })
        .collect())
}

fn midpoint(a: i64, b: i64) -> i64 {
    a + (b - a) / 2
}

/// Whether an `INFO cluster` answer says the server is a cluster node.
fn cluster_enabled(info: &str) -> bool {
    info.lines().any(|l| l.trim() == "cluster_enabled:1")
}

/// `palisade:rl:{<first 16 bytes of SHA-256, hex>}`.
fn bucket_key(bucket: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bucket.as_bytes());
    let mut key = String::with_capacity(46);
    key.push_str("palisade:rl:{");
    for byte in &digest.as_ref()[..16] {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key.push('}');
    key
}

/// `palisade:rl:{palisade}:<first 16 bytes of SHA-256, hex>`: in a cluster every key of
/// the limiter hashes to the same slot (see the module doc).
fn cluster_key(bucket: &str) -> String {
    let standalone = bucket_key(bucket);
    let digest = &standalone["palisade:rl:{".len()..standalone.len() - 1];
    format!("palisade:rl:{CLUSTER_TAG}:{digest}")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A cluster client seeded with the configured node. Its own timeouts and retries are
/// short: the gateway's `store_timeout` and circuit decide how long a request waits.
fn cluster_client(url: &str, display: &str) -> Result<ClusterClient, String> {
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
fn probe_client(client: &redis::Client) -> redis::Client {
    let info = client.get_connection_info().clone();
    let settings = info.redis_settings().clone().set_db(0);
    redis::Client::open(info.set_redis_settings(settings)).unwrap_or_else(|_| client.clone())
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `redis://user:secret@host:6379/0` → `redis://***@host:6379/0`.
pub fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
