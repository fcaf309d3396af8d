//! Tests of the GCRA: bursts, window edges, extremes that must not overflow, and agreement
//! with a token bucket and with virtual scheduling.

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
            true, true, true, true, true, false, false, true, false, true, true, true, true, false,
            false
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
