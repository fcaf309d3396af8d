//! The generic cell rate algorithm (GCRA), as a pure function of one key's state.
//!
//! A key's whole state is one number, its theoretical arrival time (TAT): when the next
//! request would be due if the client sent at exactly the allowed rate. With emission
//! interval `T = window / limit` and burst tolerance `tau = T × burst`, a request at `now`
//! is admitted when `max(TAT, now) + T − now ≤ tau`, and the TAT moves to that sum. Unlike
//! fixed windows this never admits a double burst across a window edge, and a refused
//! request leaves the TAT alone: refusals cost the client nothing, so it is admitted again
//! as soon as its rate drops.

use std::time::Duration;

/// `limit` requests per `window`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
    pub burst: u32,
}

impl Quota {
    pub fn new(limit: u32, window: Duration, burst: Option<u32>) -> Result<Quota, String> {
        let burst = burst.unwrap_or(limit);
        if limit == 0 || burst == 0 {
            return Err("limit and burst must be at least 1".to_owned());
        }
        if window.is_zero() {
            return Err("the window must be longer than zero".to_owned());
        }
        Ok(Quota {
            limit,
            window,
            burst,
        })
    }

    /// `T`: the time one request "costs", in nanoseconds: `window / limit`, computed in
    /// u128, saturated to `u64::MAX` (windows past ~584 years) and at least 1 (a window
    /// shorter than `limit` nanoseconds is rounded up to one request per nanosecond).
    fn interval_ns(&self) -> u64 {
        // `max(1)`: the fields are public, so a `Quota` built without `new` must not divide by 0.
        let t = self.window.as_nanos() / u128::from(self.limit.max(1));
        u64::try_from(t).unwrap_or(u64::MAX).max(1)
    }

    /// `T` in nanoseconds.
    pub fn emission_interval_ns(&self) -> u64 {
        self.interval_ns()
    }

    /// `T = window / limit` (at least one nanosecond).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns())
    }
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted. `remaining`: requests still admissible at once; `reset`: time until the
    /// full burst is available again.
    Allow { remaining: u32, reset: Duration },
    /// Refused. `retry_after`: time until one request would be admitted.
    Deny {
        retry_after: Duration,
        reset: Duration,
    },
}

/// Decides one request at `now` (nanoseconds on the caller's monotonic clock) for a key
/// whose TAT is `tat` (`None`: never seen, or forgotten). Returns the decision and the TAT
/// to store: `None` when refused, because a refusal consumes nothing.
pub fn decide(tat: Option<u64>, now: u64, quota: &Quota) -> (Decision, Option<u64>) {
    // In u128: `T × burst` and `TAT + T` cannot overflow there (both operands are < 2^64),
    // so nothing near the ends of the clock's range can wrap or saturate into a wrong answer.
    let t = u128::from(quota.interval_ns());
    let tau = t * u128::from(quota.burst);
    let now = u128::from(now);
    let start = tat.map_or(now, |tat| u128::from(tat).max(now));
    let new_tat = start + t;
    let ahead = new_tat - now;
    let nanos = |n: u128| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX));
    if ahead <= tau {
        let decision = Decision::Allow {
            remaining: u32::try_from((tau - ahead) / t).unwrap_or(u32::MAX),
            reset: nanos(ahead),
        };
        // Saturates only for windows of centuries, where "never again" is the right answer.
        (decision, Some(u64::try_from(new_tat).unwrap_or(u64::MAX)))
    } else {
        let decision = Decision::Deny {
            retry_after: nanos(ahead - tau),
            reset: nanos(start - now),
        };
        (decision, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn quota(limit: u32, window_s: u64, burst: Option<u32>) -> Quota {
        Quota::new(limit, Duration::from_secs(window_s), burst).unwrap()
    }

    /// Runs a schedule of arrival times (seconds) and returns which were admitted.
    fn run(quota: &Quota, arrivals: &[u64]) -> Vec<bool> {
        let mut tat = None;
        arrivals
            .iter()
            .map(|&at| {
                let (decision, new_tat) = decide(tat, at * S, quota);
                if new_tat.is_some() {
                    tat = new_tat;
                }
                matches!(decision, Decision::Allow { .. })
            })
            .collect()
    }

    /// An independent reference: a token bucket of `burst` tokens refilled at one token per
    /// `window / limit`, evaluated with exact rationals. GCRA with tau = T × burst admits
    /// exactly what this bucket admits.
    fn reference(limit: u64, window_s: u64, burst: u64, arrivals: &[u64]) -> Vec<bool> {
        // Work in units of 1/limit seconds so that one token = window_s units.
        let mut tokens_units = burst * window_s; // full bucket, scaled by window_s
        let mut last = None::<u64>;
        arrivals
            .iter()
            .map(|&at| {
                if let Some(last) = last {
                    // Refill: (at - last) seconds × limit / window tokens, scaled by window_s.
                    tokens_units = (tokens_units + (at - last) * limit).min(burst * window_s);
                }
                last = Some(at);
                if tokens_units >= window_s {
                    tokens_units -= window_s;
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    #[test]
    fn login_example_five_per_fifteen_minutes() {
        let q = quota(5, 900, None);
        let mut tat = None;
        for expected_remaining in [4, 3, 2, 1, 0] {
            let (decision, new_tat) = decide(tat, 0, &q);
            match decision {
                Decision::Allow { remaining, .. } => assert_eq!(remaining, expected_remaining),
                other => panic!("expected Allow, got {other:?}"),
            }
            tat = new_tat;
        }
        let (decision, new_tat) = decide(tat, 0, &q);
        assert_eq!(
            decision,
            Decision::Deny {
                retry_after: Duration::from_secs(180),
                reset: Duration::from_secs(900)
            }
        );
        assert_eq!(new_tat, None, "a refusal consumes nothing");
        // One request becomes admissible exactly 3 minutes later, not before.
        assert!(matches!(
            decide(tat, 180 * S - 1, &q).0,
            Decision::Deny { .. }
        ));
        assert!(matches!(
            decide(tat, 180 * S, &q).0,
            Decision::Allow { remaining: 0, .. }
        ));
    }

    #[test]
    fn hammering_never_extends_the_wait() {
        let q = quota(5, 900, None);
        // 5 at once, then one attempt every second for ten minutes.
        let mut arrivals = vec![0; 5];
        arrivals.extend(1..=600);
        let admitted = run(&q, &arrivals);
        let admitted_at: Vec<u64> = arrivals
            .iter()
            .zip(&admitted)
            .filter(|(_, a)| **a)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(admitted_at, [0, 0, 0, 0, 0, 180, 360, 540]);
    }

    #[test]
    fn no_double_burst_at_window_edges() {
        let q = quota(5, 900, None);
        // Fixed windows would admit 5 at t=899 and 5 more at t=900: ten in one second.
        let mut arrivals = vec![899; 5];
        arrivals.extend([900; 5]);
        let admitted = run(&q, &arrivals).iter().filter(|a| **a).count();
        assert_eq!(admitted, 5);
        // And from a burst at t=0, what refills by t=899 is 4 (one per 180 s), then 1 at 900.
        let mut arrivals = vec![0; 5];
        arrivals.extend([899; 5]);
        arrivals.extend([900; 5]);
        assert_eq!(run(&q, &arrivals).iter().filter(|a| **a).count(), 5 + 4 + 1);
    }

    #[test]
    fn matches_the_token_bucket_reference() {
        let schedules: [&[u64]; 4] = [
            &[0, 0, 0, 0, 0, 0, 1, 2, 3, 60, 61, 120, 121, 122, 900, 901],
            &[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
            &[
                5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 400, 400, 400, 2000, 2000,
            ],
            &[
                0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987,
            ],
        ];
        for (limit, window, burst) in [
            (5, 900, 5),
            (10, 60, 10),
            (10, 60, 3),
            (3, 60, 8),
            (1, 1, 1),
        ] {
            let q = quota(limit as u32, window, Some(burst as u32));
            for schedule in schedules {
                assert_eq!(
                    run(&q, schedule),
                    reference(limit, window, burst, schedule),
                    "limit {limit} window {window} burst {burst} schedule {schedule:?}"
                );
            }
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        // A window far longer than the clock's range saturates instead of wrapping.
        let ten_years = 10 * 365 * 24 * 3600 * S;
        let huge = Quota::new(1, Duration::from_secs(u64::MAX / 4), None).unwrap();
        let (first, tat) = decide(None, ten_years, &huge);
        assert!(matches!(first, Decision::Allow { .. }));
        assert!(matches!(
            decide(tat, ten_years + S, &huge).0,
            Decision::Deny { .. }
        ));
        let tiny = Quota::new(u32::MAX, Duration::from_nanos(1), None).unwrap();
        assert!(matches!(decide(None, 0, &tiny).0, Decision::Allow { .. }));
        assert!(Quota::new(0, Duration::from_secs(1), None).is_err());
        assert!(Quota::new(1, Duration::ZERO, None).is_err());
    }

    /// A second, structurally different reference: ITU-T I.371's "virtual scheduling"
    /// formulation, with the limit `L` expressed as the tolerance beyond one interval
    /// (`L = (burst − 1) × T`), a request conforming iff `t ≥ TAT − L`, on i128 so no clamping
    /// is involved. Driven in nanoseconds by a fixed pseudo-random schedule, including
    /// intervals that do not divide the window.
    fn virtual_scheduling(t: i128, burst: i128, arrivals: &[u64]) -> Vec<bool> {
        let l = (burst - 1) * t;
        let mut tat: i128 = i128::MIN / 2;
        arrivals
            .iter()
            .map(|&at| {
                let at = i128::from(at);
                if at < tat - l {
                    false
                } else {
                    tat = tat.max(at) + t;
                    true
                }
            })
            .collect()
    }

    fn run_ns(quota: &Quota, arrivals: &[u64]) -> Vec<bool> {
        let mut tat = None;
        arrivals
            .iter()
            .map(|&at| {
                let (decision, new_tat) = decide(tat, at, quota);
                assert_eq!(
                    new_tat.is_some(),
                    matches!(decision, Decision::Allow { .. })
                );
                tat = new_tat.or(tat);
                new_tat.is_some()
            })
            .collect()
    }

    #[test]
    fn matches_virtual_scheduling_on_random_nanosecond_schedules() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for (limit, window_ns, burst) in [
            (5_u32, 900 * S, 5_u32),
            (7, 1_000, 3),
            (3, 1_000, 11),
            (1, 1, 1),
            (1000, 999, 1),
            (13, 1_000_003, 13),
        ] {
            let quota = Quota::new(limit, Duration::from_nanos(window_ns), Some(burst)).unwrap();
            let t = i128::from(quota.interval_ns());
            for _ in 0..20 {
                let mut at = next(window_ns);
                let arrivals: Vec<u64> = (0..200)
                    .map(|_| {
                        // Mostly bursts (gap 0), sometimes short gaps, sometimes long pauses.
                        at += match next(4) {
                            0 | 1 => 0,
                            2 => next(window_ns / u64::from(limit) + 2),
                            _ => next(2 * window_ns + 1),
                        };
                        at
                    })
                    .collect();
                assert_eq!(
                    run_ns(&quota, &arrivals),
                    virtual_scheduling(t, i128::from(burst), &arrivals),
                    "limit {limit} window {window_ns}ns burst {burst}"
                );
            }
        }
    }

    #[test]
    fn burst_larger_and_smaller_than_the_limit() {
        // 10 per minute (T = 6 s) with a burst of 3: 3 at once, then one every 6 s.
        let q = quota(10, 60, Some(3));
        let mut tat = None;
        for expected in [2, 1, 0] {
            let (d, new_tat) = decide(tat, 0, &q);
            assert_eq!(
                d,
                Decision::Allow {
                    remaining: expected,
                    reset: Duration::from_secs(6 * (3 - u64::from(expected)))
                }
            );
            tat = new_tat;
        }
        assert_eq!(
            decide(tat, 0, &q).0,
            Decision::Deny {
                retry_after: Duration::from_secs(6),
                reset: Duration::from_secs(18)
            }
        );
        assert_eq!(
            run(&q, &[0, 0, 0, 0, 5, 6, 6, 11, 12, 60, 60, 60, 60]),
            [
                true, true, true, false, false, true, false, false, true, true, true, true, false
            ]
        );

        // 2 per minute (T = 30 s) with a burst of 5: 5 at once, then one every 30 s.
        let q = quota(2, 60, Some(5));
        let (first, _) = decide(None, 0, &q);
        assert_eq!(
            first,
            Decision::Allow {
                remaining: 4,
                reset: Duration::from_secs(30)
            }
        );
        assert_eq!(
            run(
                &q,
                &[0, 0, 0, 0, 0, 0, 29, 30, 30, 150, 150, 150, 150, 150, 150]
            ),
            [
                true, true, true, true, true, false, false, true, false, true, true, true, true,
                false, false
            ]
        );
    }

    #[test]
    fn one_per_nanosecond() {
        let q = Quota::new(1, Duration::from_nanos(1), None).unwrap();
        assert_eq!(q.emission_interval(), Duration::from_nanos(1));
        let (d, tat) = decide(None, 0, &q);
        assert_eq!(
            d,
            Decision::Allow {
                remaining: 0,
                reset: Duration::from_nanos(1)
            }
        );
        assert_eq!(tat, Some(1));
        assert_eq!(
            decide(tat, 0, &q),
            (
                Decision::Deny {
                    retry_after: Duration::from_nanos(1),
                    reset: Duration::from_nanos(1)
                },
                None
            )
        );
        assert_eq!(decide(tat, 1, &q).1, Some(2));
        // At the very end of the clock the TAT saturates instead of wrapping to 0.
        let (d, tat) = decide(None, u64::MAX, &q);
        assert!(matches!(d, Decision::Allow { remaining: 0, .. }));
        assert_eq!(tat, Some(u64::MAX));
        // More requests per window than nanoseconds: rounded to one per nanosecond.
        let q = Quota::new(10, Duration::from_nanos(3), None).unwrap();
        assert_eq!(q.emission_interval(), Duration::from_nanos(1));
    }

    #[test]
    fn huge_windows_and_bursts_do_not_overflow() {
        // T = u64::MAX / 2 ns and a burst of u32::MAX: T × burst needs 95 bits.
        let q = Quota::new(2, Duration::from_nanos(u64::MAX), Some(u32::MAX)).unwrap();
        let (d, tat) = decide(None, 5, &q);
        let Decision::Allow { remaining, reset } = d else {
            panic!("the first request is admitted: {d:?}")
        };
        assert_eq!(remaining, u32::MAX - 1);
        assert_eq!(reset, Duration::from_nanos(u64::MAX / 2));
        // The next TAT would be past the clock's range: it saturates instead of wrapping.
        let (_, tat) = decide(tat, 5, &q);
        assert_eq!(tat, Some(u64::MAX));
        // A window of u64::MAX seconds: the interval saturates to u64::MAX nanoseconds.
        let q = Quota::new(1, Duration::from_secs(u64::MAX), None).unwrap();
        assert_eq!(q.emission_interval(), Duration::from_nanos(u64::MAX));
        let (d, tat) = decide(None, 0, &q);
        assert!(matches!(d, Decision::Allow { remaining: 0, .. }));
        assert!(matches!(
            decide(tat, u64::MAX - 1, &q).0,
            Decision::Deny { .. }
        ));
        // A `Quota` built by hand with zeros does not panic.
        let zero = Quota {
            limit: 0,
            window: Duration::from_secs(1),
            burst: 0,
        };
        assert!(matches!(decide(None, 0, &zero).0, Decision::Deny { .. }));
        assert!(Quota::new(1, Duration::from_secs(1), Some(0)).is_err());
    }
}
