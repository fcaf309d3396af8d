//! The shared store for rate-limit state: Redis, one atomic script per decision.
//!
//! Why a script: every check of one request (several policies, a lockout) is read,
//! decided and written inside Redis in one round trip, so two gateways can never both
//! admit the last request of a quota. Why Redis's clock (`TIME`): instances with skewed
//! clocks would otherwise disagree on every TAT. Keys expire by themselves once their TAT
//! has passed (they then decide exactly like a key never seen), so Redis holds only
//! clients that are currently constrained.
//!
//! Key names are `palisade:rl:{<32 hex>}`: a digest of the bucket, so no client address,
//! header value or account name is stored in the clear and key length is fixed. The braces
//! make each key its own Redis Cluster hash tag. Works with Redis 6+ (scripts replicate
//! their effects, so `TIME` before a write is allowed).
//!
//! Failure is reported, never hidden or waited out: `check_all` returns an error on a
//! timeout or a broken connection, and after a failure the store is skipped for
//! `RETRY_INTERVAL` (no request waits on a dead Redis), then tried again by the next
//! request; the connection manager reconnects in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::gcra::Decision;
use super::memory::{Check, Op};

/// How long the store is skipped after a failure before it is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The GCRA of `gcra.rs`, in microseconds of Redis's clock. Per key, ARGV holds three
/// values: the emission interval T and the tolerance tau (both in nanoseconds, so
/// sub-microsecond intervals keep their precision as Lua doubles) and the operation
/// (`0` take, `1` peek, `2` charge, `3` refund; see `memory::Op`). Returns three integers per key:
/// `1, remaining, reset_us` when admitted, `0, retry_after_us, reset_us` when refused.
/// Doubles hold microseconds since 1970 exactly (< 2^53); TATs are stored with `%.0f`
/// because Lua's `tostring` keeps only 14 digits.
const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local out, news = {}, {}
local all_admit = true
for i = 1, #KEYS do
  local t = tonumber(ARGV[3 * i - 2]) / 1000
  local tau = tonumber(ARGV[3 * i - 1]) / 1000
  local op = ARGV[3 * i]
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
  local op = ARGV[3 * i]
  if op == '3' then
    local tat = tonumber(redis.call('GET', KEYS[i]) or 0) or 0
    if tat > now then
      local back = math.max(tat - tonumber(ARGV[3 * i - 2]) / 1000, now)
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
    /// One connection per worker (`workers`): a decision is sent and answered on the thread
    /// that serves the request, never handed to another worker's connection.
    managers: Box<[ConnectionManager]>,
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
        let managers = (0..crate::workers::count())
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot set up Redis at {display}: {e}"))?;
        Ok(Arc::new(RedisStore {
            url: url.to_owned(),
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

    /// Decides every check of one request in one script call, within `timeout`.
    pub async fn check_all(
        &self,
        checks: &[Check<'_>],
        timeout: Duration,
    ) -> Result<Vec<Decision>, StoreError> {
        if self.elapsed_ms() < self.health.resting_until_ms.load(Ordering::Relaxed) {
            return Err(StoreError::Resting);
        }
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            let interval = check.quota.emission_interval().as_nanos();
            let tau = interval.saturating_mul(u128::from(check.quota.burst));
            let op = match check.op {
                Op::Take => "0",
                Op::Peek => "1",
                Op::Charge => "2",
                Op::Refund => "3",
            };
            invocation
                .key(bucket_key(check.key))
                .arg(interval.to_string())
                .arg(tau.to_string())
                .arg(op);
        }
        let mut connection = crate::workers::own(&self.managers).clone();
        let answer: Result<Vec<i64>, StoreError> =
            match tokio::time::timeout(timeout, invocation.invoke_async(&mut connection)).await {
                Err(_) => Err(StoreError::Timeout),
                Ok(Err(e)) => Err(StoreError::Failed(e.to_string())),
                Ok(Ok(values)) => Ok(values),
            };
        let decisions = answer.and_then(|values| parse_answer(&values, checks.len()));
        match &decisions {
            Ok(_) => self.recovered(),
            Err(error) => self.failed(error),
        }
        decisions
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
fn parse_answer(values: &[i64], expected: usize) -> Result<Vec<Decision>, StoreError> {
    if values.len() != expected * 3 {
        return Err(StoreError::Failed(format!(
            "the script answered {} values for {expected} keys",
            values.len()
        )));
    }
    let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
    Ok(values
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

const HEX: &[u8; 16] = b"0123456789abcdef";

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
mod tests {
    use super::*;
    use crate::ratelimit::gcra::Quota;
    use crate::ratelimit::memory::MemoryStore;
    use palisade_testkit::RedisServer;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn admitted(decisions: &[Decision]) -> Vec<bool> {
        (decisions.iter())
            .map(|d| matches!(d, Decision::Allow { .. }))
            .collect()
    }

    /// The script and the memory store decide a burst identically: same admissions, same
    /// `remaining`, the same retry time to within Redis's microsecond clock.
    #[tokio::test]
    async fn the_script_decides_like_the_memory_store() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).unwrap();
        let memory = MemoryStore::new(1000);
        let quota = Quota::new(5, Duration::from_secs(3600), None).unwrap();
        for i in 0..7 {
            let shared = store
                .check_all(&[Check::take("burst", quota)], TIMEOUT)
                .await
                .unwrap();
            let local = memory.check_all(&[Check::take("burst", quota)]);
            match (shared[0], local[0]) {
                (Decision::Allow { remaining: a, .. }, Decision::Allow { remaining: b, .. }) => {
                    assert_eq!(a, b, "request {i}")
                }
                (Decision::Deny { retry_after: a, .. }, Decision::Deny { retry_after: b, .. }) => {
                    // One request per 720 s: the next is due in just under 720 s.
                    assert!(a.abs_diff(b) < Duration::from_secs(1), "{a:?} vs {b:?}");
                    assert!(a > Duration::from_secs(715) && a <= Duration::from_secs(720));
                }
                other => panic!("request {i}: the stores disagree: {other:?}"),
            }
        }
        let keys = redis.keys("palisade:rl:*");
        assert_eq!(keys.len(), 1, "{keys:?}");
        let ttl = redis.ttl_ms(&keys[0]);
        assert!(
            ttl > 0 && ttl <= 3_600_001,
            "the key expires by itself: {ttl}"
        );
    }

    #[tokio::test]
    async fn takes_are_all_or_nothing_peeks_free_and_charges_independent() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).unwrap();
        let two = Quota::new(2, Duration::from_secs(60), None).unwrap();
        let check = |key, op| Check {
            key,
            quota: two,
            op,
        };
        let call = |checks: Vec<Check<'static>>| {
            let store = store.clone();
            async move { admitted(&store.check_all(&checks, TIMEOUT).await.unwrap()) }
        };
        assert_eq!(call(vec![check("lock", Op::Peek)]).await, [true]);
        assert_eq!(call(vec![check("lock", Op::Charge)]).await, [true]);
        assert_eq!(call(vec![check("lock", Op::Charge)]).await, [true]);
        assert_eq!(call(vec![check("lock", Op::Peek)]).await, [false]);
        // The refusing peek blocks the take (not committed); the charge commits.
        assert_eq!(
            call(vec![
                check("other", Op::Charge),
                check("take", Op::Take),
                check("lock", Op::Peek)
            ])
            .await,
            [true, true, false]
        );
        let Decision::Allow { remaining, .. } = store
            .check_all(&[check("take", Op::Take)], TIMEOUT)
            .await
            .unwrap()[0]
        else {
            panic!("`take` was never consumed");
        };
        assert_eq!(remaining, 1);
        assert_eq!(call(vec![check("other", Op::Charge)]).await, [true]);
        assert_eq!(call(vec![check("other", Op::Peek)]).await, [false]);
        // Peeks wrote nothing: exactly three buckets exist.
        assert_eq!(redis.keys("palisade:rl:*").len(), 3);
    }

    #[tokio::test]
    async fn a_dead_store_fails_fast_rests_and_recovers() {
        let redis = RedisServer::start();
        let store = RedisStore::connect(&redis.url()).unwrap();
        let quota = Quota::new(10, Duration::from_secs(60), None).unwrap();
        let take = [Check::take("k", quota)];
        assert!(store.check_all(&take, TIMEOUT).await.is_ok());
        redis.stop();
        let error = store.check_all(&take, TIMEOUT).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Failed(_) | StoreError::Timeout),
            "{error:?}"
        );
        assert_eq!(
            store.check_all(&take, TIMEOUT).await.unwrap_err(),
            StoreError::Resting,
            "right after a failure the store is not tried"
        );
        redis.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(RETRY_INTERVAL).await;
            match store.check_all(&take, TIMEOUT).await {
                Ok(decisions) => {
                    assert_eq!(admitted(&decisions), [true]);
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "no recovery: {e:?}"),
            }
        }
        assert_eq!(redis.keys("palisade:rl:*").len(), 1);
    }

    #[test]
    fn bucket_keys_are_fixed_length_hash_tags_without_the_value() {
        let key = bucket_key("login|login-ip|ip|203.0.113.7");
        assert_eq!(key.len(), 46);
        assert!(key.starts_with("palisade:rl:{") && key.ends_with('}'));
        assert!(!key.contains("203.0.113.7"));
        assert_ne!(key, bucket_key("login|login-ip|ip|203.0.113.8"));
        assert_eq!(key, bucket_key("login|login-ip|ip|203.0.113.7"));
    }

    #[test]
    fn credentials_never_reach_the_display_form() {
        assert_eq!(
            without_credentials("redis://:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            without_credentials("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
    }

    #[test]
    fn malformed_answers_are_failures_not_decisions() {
        assert!(matches!(
            parse_answer(&[1, 2], 1),
            Err(StoreError::Failed(_))
        ));
        assert_eq!(
            parse_answer(&[1, 4, 1_000, 0, 2_000_000, 5_000_000], 2).unwrap(),
            [
                Decision::Allow {
                    remaining: 4,
                    reset: Duration::from_millis(1)
                },
                Decision::Deny {
                    retry_after: Duration::from_secs(2),
                    reset: Duration::from_secs(5)
                }
            ]
        );
    }
}
