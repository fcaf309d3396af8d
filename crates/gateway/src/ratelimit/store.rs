//! Which store decides a request's checks, and what happens when the shared one fails.
//!
//! Input: the checks of one request. Output: the decisions, or what `on_store_error`
//! says to do instead. With `store = "memory"` the in-process store decides. With Redis,
//! every call is bounded by `store_timeout`; when it fails (or is resting after a recent
//! failure, see `redis`), `local` decides in this instance's memory, `deny` answers 503
//! and `allow` admits without counting. Each fallback is counted, and marked on the
//! request's access line; the first failure and the recovery are logged by the store. The
//! local store is the same one across reloads, so a fallback keeps the counts of earlier
//! fallbacks.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use super::memory::{Check, MemoryStore};
use super::redis::{RedisStore, StoreError};
use crate::config::OnStoreError;
use crate::observe::Metrics;
use crate::quota::gcra::Decision;

/// What the store said about one request's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Decided(Vec<Decision>),
    /// The shared store failed and `on_store_error = "deny"`.
    Unavailable,
    /// The shared store failed and `on_store_error = "allow"`: nothing was counted.
    Unlimited,
}

/// The rate-limit store of one pipeline build.
pub(crate) struct RateStore {
    local: Arc<MemoryStore>,
    shared: Option<SharedStore>,
}

/// The shared store (Redis), with what to do when it fails and the counts of its answers.
struct SharedStore {
    redis: Arc<RedisStore>,
    on_error: OnStoreError,
    timeout: Duration,
    ok: Counter,
    timeouts: Counter,
    errors: Counter,
    resting: Counter,
    fallbacks: Counter,
}

impl RateStore {
    pub(crate) fn memory(local: Arc<MemoryStore>) -> Self {
        RateStore {
            local,
            shared: None,
        }
    }

    /// Redis first; `local` is the fallback for `on_store_error = "local"`.
    pub(crate) fn redis(
        redis: Arc<RedisStore>,
        local: Arc<MemoryStore>,
        on_error: OnStoreError,
        timeout: Duration,
        metrics: &Metrics,
    ) -> Self {
        RateStore {
            local,
            shared: Some(SharedStore {
                redis,
                on_error,
                timeout,
                ok: metrics.rate_store_calls("ok"),
                timeouts: metrics.rate_store_calls("timeout"),
                errors: metrics.rate_store_calls("error"),
                resting: metrics.rate_store_calls("resting"),
                fallbacks: metrics.rate_store_fallbacks(on_error.as_str()),
            }),
        }
    }

    /// Keys tracked by the in-memory store (the fallback's, with Redis).
    pub(crate) fn local_len(&self) -> usize {
        self.local.len()
    }

    /// Whether a shared store (Redis) decides when it answers.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// At config load: refuses a shared store the limiter cannot work with (see
    /// `RedisStore::check_supported`).
    pub(crate) async fn check_supported(&self) -> Result<(), String> {
        match &self.shared {
            Some(shared) => (shared.redis).check_supported(Duration::from_secs(1)).await,
            None => Ok(()),
        }
    }

    /// Decides `checks`; the second value names the fallback taken, if any (for the log).
    pub(crate) async fn decide(&self, checks: &[Check<'_>]) -> (Verdict, Option<&'static str>) {
        let Some(shared) = &self.shared else {
            return (Verdict::Decided(self.local.check_all(checks)), None);
        };
        let result = shared.redis.check_all(checks, shared.timeout).await;
        match shared.count(result) {
            Some(decisions) => (Verdict::Decided(decisions), None),
            None => {
                shared.fallbacks.inc();
                let verdict = match shared.on_error {
                    OnStoreError::Local => Verdict::Decided(self.local.check_all(checks)),
                    OnStoreError::Deny => Verdict::Unavailable,
                    OnStoreError::Allow => Verdict::Unlimited,
                };
                (verdict, Some(shared.on_error.as_str()))
            }
        }
    }

    /// Gives back `Refund` checks to the store that took them: this instance's memory
    /// (`shared = false`) or Redis. A refund Redis cannot take is lost (counted as a failed
    /// call), never moved to another store, which never took it.
    pub(crate) async fn refund(&self, checks: &[Check<'_>], shared: bool) {
        if checks.is_empty() {
            return;
        }
        match (&self.shared, shared) {
            (Some(store), true) => {
                // Tried even while Redis rests after a failure: see `RedisStore::call`.
                let result = store.redis.call(checks, store.timeout).await;
                store.count(result);
            }
            _ => {
                self.local.check_all(checks);
            }
        }
    }
}

impl SharedStore {
    /// Counts one call's outcome; the decisions if Redis gave them.
    fn count(&self, result: Result<Vec<Decision>, StoreError>) -> Option<Vec<Decision>> {
        match result {
            Ok(decisions) => {
                self.ok.inc();
                Some(decisions)
            }
            Err(error) => {
                match error {
                    StoreError::Timeout => self.timeouts.inc(),
                    StoreError::Failed(_) => self.errors.inc(),
                    StoreError::Resting => self.resting.inc(),
                };
                None
            }
        }
    }
}
