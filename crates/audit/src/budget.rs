//! The request budget and pacer every probe goes through.
//!
//! Input: the most requests the audit may send, the most per second, and an optional
//! deadline for the whole audit. Output: permission to send one request, granted at the pace
//! asked for, or [`Exhausted`] when the count is spent or the request could not leave before
//! the deadline. The count is reserved atomically before the wait, so concurrent probes can
//! never overshoot the budget, and a refused reservation costs nothing. This is what keeps
//! an audit from becoming a load test or an outage, whatever a check asks for, and from
//! running for ever against a slow target.

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
    /// No request leaves after this instant.
    deadline: Option<Instant>,
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
            deadline: None,
        }
    }

    /// The same budget, with no request leaving more than `limit` from now.
    pub fn with_deadline(mut self, limit: Duration) -> Self {
        self.deadline = Instant::now().checked_add(limit);
        self
    }

    /// Reserves one request and waits for its slot; refused (and not counted) when the
    /// count is spent or the slot would come after the deadline.
    pub async fn acquire(&self) -> Result<(), Exhausted> {
        if self.out_of_time() {
            return Err(Exhausted);
        }
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
                if self.deadline.is_some_and(|d| at >= d) {
                    self.used.fetch_sub(1, Ordering::SeqCst);
                    return Err(Exhausted);
                }
                *next = Some(at + interval);
                at
            };
            tokio::time::sleep_until(at).await;
        }
        Ok(())
    }

    /// Whether the deadline has passed.
    pub fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// How long a request that leaves now may take before the deadline (`None`: no deadline).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
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

    #[tokio::test(start_paused = true)]
    async fn no_request_leaves_after_the_deadline_and_a_refusal_costs_nothing() {
        // One request per 10 s, and 25 s in all: three leave (at 0, 10 and 20 s).
        let budget = Budget::new(100, 0.1).with_deadline(Duration::from_secs(25));
        let start = Instant::now();
        let mut granted = 0;
        while budget.acquire().await.is_ok() {
            granted += 1;
        }
        assert_eq!(granted, 3);
        assert_eq!(budget.used(), 3, "the refused slot is given back");
        assert!(start.elapsed() <= Duration::from_secs(25));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(budget.out_of_time());
        assert_eq!(budget.acquire().await, Err(Exhausted));
        assert_eq!(budget.time_left(), Some(Duration::ZERO));
    }
}
