//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future that never waits on I/O (a JWT check with a shared secret, collecting a
/// body that is already in memory) to completion on this thread.
///
/// Panics if the future is still pending after many polls: with no I/O behind it, that
/// would mean it waits for something that never comes, a bug worth a crash report.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a future with no I/O behind it stayed pending");
}

/// Base64url without padding (RFC 7515 §2): the one spelling `b64url_decode` accepts.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Splits fuzz input into `n` strings at 0xFF bytes (never part of valid UTF-8), so a
/// target can take several fields from one input; missing fields are empty.
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    let mut parts: Vec<String> = data
        .splitn(n, |&b| b == 0xFF)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect();
    parts.resize(n, String::new());
    parts
}
