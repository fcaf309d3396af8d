//! The last line of defence against secrets in logs: every log line is scanned before it is
//! written, and what looks like a credential is masked wherever it appears.
//!
//! Why on the finished line: fields are redacted where they are logged (query values by
//! name, no credential headers, key ids instead of keys), but a secret can still arrive
//! inside any string a client controls — a path, a header value quoted in an error, a JSON
//! member name. Masking the serialized line catches all of them without every call site
//! having to remember. Only JSON string contents are touched, never numbers or structure:
//! - a Palisade API key `pal_<id>_<secret>` keeps its public id: `pal_<id>_***`;
//! - a JWT (`eyJ….….…`) becomes `jwt:<fingerprint>`, a keyed hash (per process) that
//!   correlates lines about one token without revealing it;
//! - a card number (13–19 digits, optionally grouped by single spaces or dashes, passing
//!   the Luhn check, not part of a longer word) keeps its last four: `card:****1234`.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::OnceLock;

/// Masks credentials inside the JSON strings of one serialized log line.
///
/// One pass over the bytes; only a character that can start a secret (`p`, `e` or a
/// digit) at a word boundary inside a string is looked at more closely. Text between
/// secrets is copied in runs, and a line without a secret is returned as it is: every
/// access line passes through here, and most hold nothing to mask (a key *id*, `pal_…`
/// without its secret, is not a key).
pub fn mask_line(line: &str) -> Cow<'_, str> {
    let bytes = line.as_bytes();
    let mut masked: Option<String> = None;
    // `line[..copied]` is already in `masked`.
    let mut copied = 0;
    let mut in_string = false;
    // Where the last escape sequence ended: the character after one starts a word (an
    // escaped character is a control or a quote, never part of a word).
    let mut escape_end = usize::MAX;
    let mut i = 0;
    while i < bytes.len() {
        if !in_string {
            // Structure, member names' quotes and numbers: on to the next string.
            match bytes[i..].iter().position(|&b| b == b'"') {
                Some(quote) => {
                    i += quote + 1;
                    in_string = true;
                    continue;
                }
                None => break,
            }
        }
        // Inside a string: on to the next byte that matters (most bytes are letters that
        // start nothing; bytes of multi-byte characters never matter).
        match bytes[i..]
            .iter()
            .position(|&b| MATTERS_IN_STRING[usize::from(b)])
        {
            Some(skip) => i += skip,
            None => break,
        }
        match bytes[i] {
            b'\\' => {
                // An escape is skipped whole (so `\"` never ends the string here): `\uXXXX`
                // is six bytes, the others two. A `\u` without four hex digits (never from
                // the formatter) counts as two, so it cannot hide a quote or a key.
                let hex4 = bytes
                    .get(i + 2..i + 6)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                i += if bytes.get(i + 1) == Some(&b'u') && hex4 {
                    6
                } else {
                    2
                };
                escape_end = i;
            }
            b'"' => {
                in_string = false;
                i += 1;
            }
            // `p`, `e` or a digit: a secret may start here if it starts a word.
            _ if i == escape_end || !is_word(bytes[i - 1]) => {
                // `i` is at an ASCII byte, so at a character boundary.
                match secret_at(&line[i..]) {
                    Some((len, replacement)) => {
                        let out = masked.get_or_insert_with(|| String::with_capacity(line.len()));
                        out.push_str(&line[copied..i]);
                        out.push_str(&replacement);
                        i += len;
                        copied = i;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    match masked {
        None => Cow::Borrowed(line),
        Some(mut out) => {
            out.push_str(&line[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Masks credentials in one plain string (not JSON): the same rules as [`mask_line`], for
/// client-supplied text that leaves the process by another way than the log, such as a
/// span's `url.path` sent to an OpenTelemetry collector.
pub fn mask(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut masked: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_word(bytes[i - 1]);
        // Only an ASCII byte can start a secret, so `i` is at a character boundary then.
        if starts_word
            && matches!(bytes[i], b'p' | b'e' | b'0'..=b'9')
            && let Some((len, replacement)) = secret_at(&text[i..])
        {
            let out = masked.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..i]);
            out.push_str(&replacement);
            i += len;
            copied = i;
            continue;
        }
        i += 1;
    }
    match masked {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// The bytes `mask_line` stops at inside a string: the end of it, an escape, and the
/// first characters of the secrets it knows (`pal_`, `eyJ`, a digit).
static MATTERS_IN_STRING: [bool; 256] = {
    let mut matters = [false; 256];
    matters[b'"' as usize] = true;
    matters[b'\\' as usize] = true;
    matters[b'p' as usize] = true;
    matters[b'e' as usize] = true;
    let mut digit = b'0';
    while digit <= b'9' {
        matters[digit as usize] = true;
        digit += 1;
    }
    matters
};

/// A secret starting at the beginning of `text`: its length and its masked form.
fn secret_at(text: &str) -> Option<(usize, String)> {
    match text.as_bytes().first()? {
        b'p' => api_key_at(text),
        b'e' => jwt_at(text),
        _ => card_at(text),
    }
}

/// `pal_` + 12 base62 + `_` + 43 base62, not followed by another word character.
fn api_key_at(text: &str) -> Option<(usize, String)> {
    let rest = text.strip_prefix("pal_")?;
    let id = rest.get(..12)?;
    let secret = rest.get(13..13 + 43)?;
    let separator = rest.as_bytes().get(12)?;
    let len = 4 + 12 + 1 + 43;
    let ends = text.as_bytes().get(len).is_none_or(|b| !is_word(*b));
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    (*separator == b'_' && base62(id) && base62(secret) && ends)
        .then(|| (len, format!("pal_{id}_***")))
}

/// Three base64url segments separated by dots, the first a JSON header (`eyJ`).
fn jwt_at(text: &str) -> Option<(usize, String)> {
    if !text.starts_with("eyJ") {
        return None;
    }
    let bytes = text.as_bytes();
    let segment = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-' || **b == b'_')
            .count()
    };
    let header = segment(0);
    if header < 10 || bytes.get(header) != Some(&b'.') {
        return None;
    }
    let claims = segment(header + 1);
    let second_dot = header + 1 + claims;
    if claims < 2 || bytes.get(second_dot) != Some(&b'.') {
        return None;
    }
    let len = second_dot + 1 + segment(second_dot + 1);
    Some((len, format!("jwt:{}", fingerprint(&text[..len]))))
}

/// 13–19 digits, in groups split by single spaces or dashes, Luhn-valid, standing alone.
fn card_at(text: &str) -> Option<(usize, String)> {
    let bytes = text.as_bytes();
    // Every timestamp and id in a line comes through here: no allocation until it is a
    // card. A run longer than 19 digits is counted but not kept.
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut len = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                if let Some(slot) = digits.get_mut(count) {
                    *slot = bytes[i] - b'0';
                }
                count += 1;
                len = i + 1;
            }
            b' ' | b'-' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) && count > 0 => {}
            _ => break,
        }
        i += 1;
    }
    let stands_alone = bytes.get(len).is_none_or(|b| !is_word(*b));
    if !(13..=19).contains(&count) || !stands_alone || !luhn(&digits[..count]) {
        return None;
    }
    let last_four: String = digits[count - 4..count]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect();
    Some((len, format!("card:****{last_four}")))
}

/// The Luhn checksum over digit values (0–9), most significant first.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = (digits.iter().rev().enumerate())
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// 8 hex digits of HMAC-SHA-256 under a key made at process start: the same token gives the
/// same fingerprint in every line of one run, and nothing outside the process can compute
/// or reverse it.
fn fingerprint(token: &str) -> String {
    static KEY: OnceLock<aws_lc_rs::hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"palisade")
        })
    });
    let tag = aws_lc_rs::hmac::sign(key, token.as_bytes());
    tag.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The log writer: masks each finished line and hands it to the output thread.
pub struct MaskedLine;

impl Write for MaskedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole line per write.
        match std::str::from_utf8(buf) {
            Ok(line) => super::output::enqueue(mask_line(line).as_bytes()),
            Err(_) => super::output::enqueue(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log writer straight to stderr, each line masked (for short commands, no writer thread).
pub struct MaskedStderr;

impl Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(line) => io::stderr().write_all(mask_line(line).as_bytes())?,
            Err(_) => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The panic hook of the `palisade` binary: a panic's message is whatever the code put in
/// it (a request value, a token), and the default hook prints it raw. This writes one
/// masked JSON line instead (`event` `panic`), straight to stderr, where the default hook
/// wrote: synchronous, so the line survives a panic that ends the process.
pub fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let thread = std::thread::current();
    let line = panic_line(message, location.as_deref(), thread.name());
    let _ = io::stderr().write_all(line.as_bytes());
}

/// The masked JSON line of a panic (with its newline).
fn panic_line(message: &str, location: Option<&str>, thread: Option<&str>) -> String {
    let line = serde_json::json!({
        "timestamp": super::clock::rfc3339_micros(std::time::SystemTime::now()),
        "level": "ERROR",
        "event": "panic",
        "thread": thread.unwrap_or("-"),
        "location": location.unwrap_or("-"),
        "message": message,
    });
    let mut out = mask_line(&line.to_string()).into_owned();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pal_02eaGUt6L2Ll_aUDtlyH4qgvx6bx4m0UchcH7sVGpECsvwGavag7zIki";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    #[test]
    fn a_line_without_a_secret_is_not_copied() {
        // Timestamps, numbers and a key *id* (no secret) look like the start of something.
        let line = r#"{"timestamp":"2026-11-30T04:54:19.123456Z","event":"request","status":200,"latency_ms":1.25,"path":"/api/orders/1234","key_id":"pal_02eaGUt6L2Ll","note":"peek 4111 1111"}"#;
        assert!(matches!(mask_line(line), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_right_after_an_escape_is_masked() {
        // The escaped character is a control, so the key after it starts a word.
        for escape in [r"\n", r"\t", r#"\""#, r"\u001b", r"\\"] {
            let line =
                format!(r#"{{"error":"bad{escape}{KEY}","card":"{escape}4111 1111 1111 1111"}}"#);
            let masked = mask_line(&line);
            assert!(!masked.contains("aUDtlyH4qgvx"), "{masked}");
            assert!(masked.contains("pal_02eaGUt6L2Ll_***"), "{masked}");
            assert!(masked.contains("card:****1111"), "{masked}");
            let value: serde_json::Value = serde_json::from_str(&masked).unwrap();
            assert!(value.is_object(), "still one JSON object: {masked}");
        }
    }

    #[test]
    fn a_malformed_unicode_escape_hides_nothing() {
        // `\u` without four hex digits must not swallow the quote or the key after it.
        let line = format!(r#"{{"a":"x\u#\\{KEY}"}}"#);
        assert!(!mask_line(&line).contains("aUDtlyH4qgvx"), "{line}");
        let line = format!(r#"{{"a":"x\u1"}},"b":"{KEY}"}}"#);
        assert!(!mask_line(&line).contains("aUDtlyH4qgvx"), "{line}");
    }

    #[test]
    fn a_line_cut_inside_an_escape_or_a_secret_is_handled() {
        // Never a complete line from the formatter, but the scanner must not run past the
        // end or lose the tail.
        for line in [
            r#"{"a":"x\"#,
            r#"{"a":"\u00"#,
            r#"{"a":"pal_02eaGUt6"#,
            r#"{"a":"eyJhbG"#,
        ] {
            assert_eq!(mask_line(line), line);
        }
        assert_eq!(
            mask_line(r#"{"a":"4111 1111 1111 1111"#),
            r#"{"a":"card:****1111"#
        );
    }

    #[test]
    fn keys_tokens_and_cards_are_masked_inside_strings_only() {
        let line = format!(
            r#"{{"path":"/api/x/{KEY}","error":"bad token {JWT}","note":"card 4111 1111 1111 1111 ok","latency_ms":4111111111111111.0,"request_id":"c5054d08000000000000"}}"#
        );
        let masked = mask_line(&line);
        assert!(!masked.contains("aUDtlyH4qgvx"), "{masked}");
        assert!(
            masked.contains("pal_02eaGUt6L2Ll_***"),
            "the key id stays: {masked}"
        );
        assert!(
            !masked.contains("c2lnbmF0dXJl") && masked.contains("jwt:"),
            "{masked}"
        );
        assert!(masked.contains("card:****1111 ok"), "{masked}");
        assert!(
            masked.contains(r#""latency_ms":4111111111111111.0"#),
            "numbers are data: {masked}"
        );
        assert!(
            masked.contains("c5054d08000000000000"),
            "ids are not cards: {masked}"
        );
        let value: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert!(value.is_object(), "still one JSON object");
    }

    #[test]
    fn a_panic_is_one_masked_json_line() {
        let line = panic_line(
            &format!("bad input {KEY} with card 4111 1111 1111 1111"),
            Some("src/x.rs:1:2"),
            Some("worker"),
        );
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        assert!(!line.contains("aUDtlyH4qgvx"), "{line}");
        assert!(!line.contains("4111 1111 1111 1111"), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], "panic");
        assert_eq!(value["level"], "ERROR");
        assert_eq!(value["location"], "src/x.rs:1:2");
        assert_eq!(
            value["message"],
            "bad input pal_02eaGUt6L2Ll_*** with card card:****1111"
        );
    }

    #[test]
    fn plain_text_is_masked_by_the_same_rules() {
        let path = format!("/api/{KEY}/cards/4111-1111-1111-1111/{JWT}");
        let masked = mask(&path);
        assert_eq!(
            masked.split("jwt:").next().unwrap(),
            "/api/pal_02eaGUt6L2Ll_***/cards/card:****1111/"
        );
        assert!(!masked.contains("c2lnbmF0dXJl"), "{masked}");
        // Quotes and backslashes are plain characters here; nothing to mask stays borrowed.
        assert!(matches!(mask(r#"/a/"b\/4111 1111"#), Cow::Borrowed(_)));
        assert_eq!(mask(&format!("\"{KEY}")), "\"pal_02eaGUt6L2Ll_***");
    }

    #[test]
    fn the_same_token_has_the_same_fingerprint() {
        let a = mask_line(&format!(r#"{{"a":"{JWT}"}}"#)).into_owned();
        let b = mask_line(&format!(r#"{{"b":"x {JWT} y"}}"#)).into_owned();
        let fp = |s: &str| s.split("jwt:").nth(1).unwrap()[..8].to_owned();
        assert_eq!(fp(&a), fp(&b));
    }

    #[test]
    fn lookalikes_and_escapes_are_left_alone() {
        for line in [
            r#"{"n":"4111111111111112"}"#,           // fails Luhn
            r#"{"n":"order-41111111111111111111"}"#, // 20 digits
            r#"{"n":"x4111111111111111"}"#,          // part of a word
            r#"{"n":"pal_short_key"}"#,
            r#"{"n":"eyJ not a token"}"#,
            r#"{"n":"quote \" 4111"}"#,
        ] {
            assert_eq!(mask_line(line), line);
        }
    }
}
