//! Each connection's offset to Redis's clock, which places every script's deadline.
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

use redis::aio::ConnectionManager;

use super::cluster::cluster_enabled;
use super::{RedisStore, StoreError, lock};

/// No offset to Redis's clock learned yet (or the connection failed since).
pub(super) const UNKNOWN: i64 = i64::MIN;

/// A sample whose round trip is within this of the shortest seen updates the offset.
const RTT_MARGIN_US: i64 = 1_000;
/// Once the offset is this old, any sample under the timeout replaces it (drift, a route
/// that got slower for good).
const REFRESH_US: i64 = 10_000_000;

/// One connection's offset to Redis's clock, in microseconds, from the sample with the
/// shortest round trip (the tightest bound on the offset).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClockSync {
    pub(super) offset: i64,
    /// The round trip of the sample the offset came from.
    pub(super) rtt: i64,
    /// When (our clock) that sample was taken.
    at: i64,
}

impl ClockSync {
    pub(super) const UNKNOWN: ClockSync = ClockSync {
        offset: UNKNOWN,
        rtt: i64::MAX,
        at: 0,
    };

    /// Takes `redis_now` (read between `sent` and `received`) as the new offset.
    pub(super) fn set(&mut self, redis_now: i64, sent: i64, received: i64) -> i64 {
        *self = ClockSync {
            offset: redis_now - midpoint(sent, received),
            rtt: received - sent,
            at: received,
        };
        self.offset
    }

    /// Learns from an answer if its round trip makes it at least as good as the offset held.
    pub(super) fn sample(&mut self, redis_now: i64, sent: i64, received: i64, timeout_us: i64) {
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

impl RedisStore {
    /// Learns from the `now` of a script's answer. An answer that the deadline had passed
    /// came within the caller's budget (a late one is dropped by the caller's timeout), so
    /// the offset was wrong: it is taken from this answer, returned for one retry.
    pub(super) fn note_answer(
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

    /// The first call on a connection (or after it failed): Redis's `TIME`, to place the
    /// script's deadline on Redis's clock (to within half this round trip), and
    /// `INFO cluster`, to detect a cluster node, in one round trip. On a cluster node the
    /// store switches to cluster mode and the offset is learned again from the slot's owner.
    pub(super) async fn learn_offset(
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
    pub(super) fn skew_offsets(&self, by_us: i64) {
        for clock in &self.clocks {
            let mut clock = lock(clock);
            if clock.offset != UNKNOWN {
                clock.offset += by_us;
            }
        }
    }

    #[cfg(test)]
    pub(super) fn offsets(&self) -> Vec<i64> {
        (self.clocks.iter())
            .map(|c| lock(c).offset)
            .filter(|o| *o != UNKNOWN)
            .collect()
    }
}

fn midpoint(a: i64, b: i64) -> i64 {
    a + (b - a) / 2
}
