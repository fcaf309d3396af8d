//! Memory held by the in-memory rate-limit store with a million idle keys (one per client
//! address, as a flood of distinct addresses would leave), measured as the process's RSS
//! growth and as the store's own estimate. Not a criterion bench: it prints two numbers.
//!
//! Run: `cargo bench -p palisade-gateway --bench rate_memory`

use std::time::Duration;

use palisade_gateway::bench::Quota;
use palisade_gateway::bench::{Check, MemoryStore};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The limiter's key for a per-ip route policy (`route|policy|ip|address`), for the
/// `i`-th address of a /8.
fn key(first_octet: u32, i: u32) -> String {
    format!(
        "orders|route.orders|ip|{first_octet}.{}.{}.{}",
        i >> 16,
        (i >> 8) & 255,
        i & 255
    )
}

fn main() {
    const KEYS: u32 = 1_000_000;
    let quota = Quota::new(100, Duration::from_secs(900), None).expect("a valid quota");
    let before = rss_kib();
    let store = MemoryStore::new(KEYS as usize);
    for i in 0..KEYS {
        store.check_all(&[Check::take(&key(10, i), quota)]);
    }
    let after = rss_kib();
    let held = store.len();
    println!(
        "{held} keys held (bound {KEYS}): RSS grew by {} MiB ({} bytes per key); store estimate {} MiB",
        (after - before) / 1024,
        (after - before) * 1024 / u64::from(KEYS),
        store.approx_bytes() >> 20
    );
    // A further million new addresses must not grow it: the bound holds.
    for i in 0..KEYS {
        store.check_all(&[Check::take(&key(172, i), quota)]);
    }
    println!(
        "after another million distinct addresses: {} keys held, RSS {} MiB above the start",
        store.len(),
        (rss_kib() - before) / 1024
    );
}
