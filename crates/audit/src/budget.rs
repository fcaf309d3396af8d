//! The request budget and pacer every probe goes through.
//!
//! Input: the most requests the audit may send and the most per second. Output: permission
//! to send one request, granted at the pace asked for, or [`Exhausted`]. The count is
//! reserved atomically before the wait, so concurrent probes can never overshoot the budget,
//! and a refused reservation costs nothing. This is what keeps an audit from becoming a
//! load test or an outage, whatever a check asks for.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The budget is spent: the probe was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

#[derive(Debug)]
pub struct Budget {
    max: u32,
    used: AtomicU32,
    /// Time between two requests; `None` when unpaced.
    interval: Option<Duration>,
    /// When the next request may leave.
    next: Mutex<Option<Instant>>,
}

impl Budget {
    /// `max` requests in all, at most `rps` per second (`rps <= 0`: unpaced).
    pub fn new(max: u32, rps: f64) -> Self {
        let interval = (rps > 0.0 && rps.is_finite()).then(|| Duration::from_secs_f64(1.0 / rps));
        Budget {
            max,
            used: AtomicU32::new(0),
            interval,
            next: Mutex::new(None),
        }
    }

    /// Reserves one request and waits for its slot.
    pub async fn acquire(&self) -> Result<(), Exhausted> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used < self.max).then_some(used + 1)
            })
            .map_err(|_| Exhausted)?;
        if let Some(interval) = self.interval {
            let at = {
                let mut next = self.next.lock().await;
                let now = Instant::now();
                let at = next.map_or(now, |n| n.max(now));
                *next = Some(at + interval);
                at
            };
            tokio::time::sleep_until(at).await;
        }
        Ok(())
    }

    /// Requests granted so far.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::SeqCst)
    }

    pub fn remaining(&self) -> u32 {
        self.max.saturating_sub(self.used())
    }

    pub fn max(&self) -> u32 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_probes_never_exceed_the_budget() {
        let budget = Arc::new(Budget::new(10, 0.0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move { budget.acquire().await.is_ok() })
            })
            .collect();
        let mut granted = 0;
        for task in tasks {
            granted += u32::from(task.await.unwrap());
        }
        assert_eq!(granted, 10);
        assert_eq!(budget.used(), 10);
        assert_eq!(budget.remaining(), 0);
        assert_eq!(budget.acquire().await, Err(Exhausted));
        assert_eq!(budget.used(), 10, "a refusal spends nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_paced_at_the_rate_asked_for() {
        let budget = Budget::new(100, 4.0);
        let start = Instant::now();
        for _ in 0..5 {
            budget.acquire().await.unwrap();
        }
        // The first leaves at once, the next four 250 ms apart (virtual time).
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }
}
