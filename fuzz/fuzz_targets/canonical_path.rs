//! `path::canonicalize` on arbitrary request paths: never panics, and what it accepts is
//! canonical (a fixed point, no dot or empty segments, only safe bytes, upper-case escapes
//! of reserved characters only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_gateway::path::canonicalize;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(path) = canonicalize(&raw) else {
        return;
    };
    let s = path.as_str();
    assert!(s.starts_with('/'), "not rooted: {s:?}");
    assert!(!s.contains("//"), "empty segment: {s:?}");
    for segment in s.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "dot segment: {s:?}");
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        assert!(
            b.is_ascii_graphic() && !matches!(b, b'\\' | b';' | b'"' | b'<' | b'>' | b'#' | b'?'),
            "unsafe byte {b:#04x} in {s:?}"
        );
        if b == b'%' {
            let hex = &bytes[i + 1..i + 3];
            assert!(
                hex.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')),
                "escape not in upper-case hex: {s:?}"
            );
            let v = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
            assert!(
                !(v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')),
                "escaped unreserved character: {s:?}"
            );
            assert!(!matches!(v, b'/' | b'\\' | b'%' | b';') && v >= 0x20 && v != 0x7f);
            i += 3;
        } else {
            i += 1;
        }
    }
    // A canonical path is its own canonical form.
    let again = canonicalize(s).unwrap_or_else(|e| panic!("canonical {s:?} refused: {e:?}"));
    assert_eq!(again.as_str(), s);
});
