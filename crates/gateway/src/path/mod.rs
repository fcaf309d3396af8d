//! One canonical path: the request path every later phase sees.
//!
//! Input: the path part of the request-target exactly as received on the wire (hyper's
//! `uri.path()`; the caller has already split off the query at `?`).
//!
//! Output: a [`CanonicalPath`], computed once per request and used for routing,
//! authorization, rate-limit keys, logs and the request line sent upstream, so that every
//! one of them sees the same string. It starts with `/`, has no empty and no dot segments,
//! percent-escapes of unreserved characters are decoded, every other escape is kept with
//! upper-case hex, and a trailing slash is kept.
//!
//! Failure mode: a path that could be read in more than one way by some server behind us
//! (an encoded `/`, a `\`, a NUL or other control character, `;` matrix parameters, escapes
//! that are not UTF-8, a `..` above the root, a malformed escape, a raw byte that must be
//! escaped) is refused with a [`PathRejection`] — the caller answers 400 with
//! [`PathRejection::reason`]. We refuse rather than guess: gateways are bypassed through
//! normalization differences between them and the servers they protect.
//!
//! Cost: one pass over the bytes and one `String` allocation; a path that is already
//! canonical (the common case) is validated in one scan and copied.

use std::fmt;

/// A request path in canonical form: starts with '/', no dot segments, no empty segments,
/// only unreserved characters decoded, remaining percent-escapes in upper-case hex.
///
/// Only [`canonicalize`] builds one, so holding a `CanonicalPath` proves the path was checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath(String);

impl CanonicalPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path was refused. Every variant answers 400; [`PathRejection::reason`] is a fixed
/// text that is safe to show a client (it never echoes the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    /// Empty, or not starting with `/` (absolute-form, authority-form and `*` are not paths).
    #[error("{}", self.reason())]
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    #[error("{}", self.reason())]
    InvalidPercentEncoding,
    /// `%2F` / `%2f`: one server splits on it, another does not.
    #[error("{}", self.reason())]
    EncodedSlash,
    /// A raw `\` or `%5C`: Windows-style servers read it as a separator.
    #[error("{}", self.reason())]
    Backslash,
    /// A raw or encoded byte 0x00–0x1F or 0x7F (NUL truncates paths in C-based servers).
    #[error("{}", self.reason())]
    ControlCharacter,
    /// A `;`: Tomcat/Spring strip `;params`, so `/api;x=1/orders` would be `/api/orders` there.
    #[error("{}", self.reason())]
    MatrixParameters,
    /// Percent-escapes that do not decode to UTF-8 (overlong `%C0%AE`, lone `%FF`, ...).
    #[error("{}", self.reason())]
    InvalidUtf8,
    /// A raw byte that RFC 3986 requires to be percent-encoded (space, `"`, `<`, non-ASCII, ...).
    #[error("{}", self.reason())]
    InvalidCharacter,
    /// A `..` segment that would climb above the root.
    #[error("{}", self.reason())]
    EscapesRoot,
    /// `%25` followed by more: an encoded percent sign, read as a second layer of encoding
    /// by servers that decode twice.
    #[error("{}", self.reason())]
    DoubleEncoding,
    /// An encoded Unicode look-alike of `.`, `/` or `\` (fullwidth forms, dot leaders).
    #[error("{}", self.reason())]
    Lookalike,
}

impl PathRejection {
    /// A short fixed text, safe to show a client.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotOriginForm => "the path must start with '/'",
            Self::InvalidPercentEncoding => "the path contains a malformed percent-escape",
            Self::EncodedSlash => "the path contains an encoded slash",
            Self::Backslash => "the path contains a backslash",
            Self::ControlCharacter => "the path contains a control character",
            Self::MatrixParameters => {
                "the path contains a ';' (matrix parameters are not accepted)"
            }
            Self::InvalidUtf8 => "the path contains percent-escapes that are not valid UTF-8",
            Self::InvalidCharacter => "the path contains a character that must be percent-encoded",
            Self::DoubleEncoding => "the path contains an encoded '%' (double encoding)",
            Self::Lookalike => "the path contains an encoded look-alike of '.', '/' or '\\'",
            Self::EscapesRoot => "the path climbs above the root",
        }
    }
}

// Byte classes, looked up in one table so the scan is a single indexed load per byte.
/// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". Never needs escaping.
const UNRESERVED: u8 = 1;
/// Other bytes allowed raw in a segment: sub-delims except ';', plus ':' and '@'.
const PCHAR: u8 = 2;
const SLASH: u8 = 3;
const PERCENT: u8 = 4;
const SEMICOLON: u8 = 5;
const BACKSLASH: u8 = 6;
const CONTROL: u8 = 7;
/// Anything else: space, '"', '<', '>', '{', '#', non-ASCII, ...
const INVALID: u8 = 0;

const CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            UNRESERVED
        } else if matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        ) {
            PCHAR
        } else if b == b'/' {
            SLASH
        } else if b == b'%' {
            PERCENT
        } else if b == b';' {
            SEMICOLON
        } else if b == b'\\' {
            BACKSLASH
        } else if b < 0x20 || b == 0x7f {
            CONTROL
        } else {
            INVALID
        };
        i += 1;
    }
    table
};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Canonicalize the path part of a request-target (see the module doc).
pub fn canonicalize(raw: &str) -> Result<CanonicalPath, PathRejection> {
    let bytes = raw.as_bytes();
    // Rule 1 — why: only origin-form has a path we can reason about; an empty path, `*` or
    // an absolute URI reaching this point means the caller mis-split the target.
    if bytes.first() != Some(&b'/') {
        return Err(PathRejection::NotOriginForm);
    }
    // Why a fast path: almost every real path is already canonical; one read-only scan
    // proves it and a copy is the whole cost.
    if is_already_canonical(bytes) {
        return Ok(CanonicalPath(raw.to_owned()));
    }
    normalize(bytes)
}

/// True when `bytes` (starting with '/') contains only unreserved and other raw pchars,
/// single slashes, no '%' and no "." or ".." segment — i.e. `normalize` would copy it.
fn is_already_canonical(bytes: &[u8]) -> bool {
    let mut seg_start = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if b == b'/' {
            let seg = &bytes[seg_start..i];
            if seg.is_empty() || seg == b"." || seg == b".." {
                return false;
            }
            seg_start = i + 1;
        } else if !matches!(CLASS[usize::from(b)], UNRESERVED | PCHAR) {
            return false;
        }
    }
    let last = &bytes[seg_start..];
    last != b"." && last != b".."
}

/// The general case: one pass, segment by segment, writing into one output buffer.
///
/// `out` holds the canonical segments so far as `/s1/s2` (no trailing slash); each new
/// segment is decoded straight into `out`, then dropped again if it turns out to be a dot
/// segment. The output is pure ASCII, so truncating at any recorded length is safe.
fn normalize(bytes: &[u8]) -> Result<CanonicalPath, PathRejection> {
    let n = bytes.len();
    let mut out = String::with_capacity(n);
    let mut i = 0;
    let trailing_slash = loop {
        // Rule 4 — why: `//api` and `/api` name the same resource on most servers but
        // not all (and not to a prefix match), so empty segments collapse to one slash.
        while i < n && bytes[i] == b'/' {
            i += 1;
        }
        if i == n {
            // Rule 6 — why: `/orders/` and `/orders` are different resources to many
            // frameworks, so the trailing slash is kept (and routes can tell them apart).
            break true;
        }
        let seg_start = out.len();
        out.push('/');
        while i < n && bytes[i] != b'/' {
            let b = bytes[i];
            match CLASS[usize::from(b)] {
                UNRESERVED | PCHAR => {
                    out.push(char::from(b));
                    i += 1;
                }
                PERCENT => i = decode_escape(bytes, i, &mut out)?,
                // Rule 3 — why: servers like Tomcat/Spring strip `;params` from segments,
                // so `/api;x=1/orders` would be `/api/orders` upstream while we matched
                // something else. We refuse rather than guess which reading is right.
                SEMICOLON => return Err(PathRejection::MatrixParameters),
                // Rule 3 — why: a backslash is a separator to Windows-style servers.
                BACKSLASH => return Err(PathRejection::Backslash),
                // Rule 3 — why: control bytes (NUL above all) truncate or split paths in
                // servers and log lines.
                CONTROL => return Err(PathRejection::ControlCharacter),
                // Rule 3 — why: RFC 3986 requires these to be escaped; servers differ on
                // how they read them raw (space, quotes, non-ASCII).
                _ => return Err(PathRejection::InvalidCharacter),
            }
        }
        let at_end = i == n;
        // Rule 5 — why: dot segments are resolved AFTER decoding unreserved characters, so
        // `%2e%2e` and `.%2E` are `..` here exactly as they will be to any server that
        // decodes before resolving. RFC 3986 §5.2.4 semantics.
        match &out[seg_start + 1..] {
            "." => out.truncate(seg_start),
            ".." => {
                out.truncate(seg_start);
                // Why reject instead of clamping to `/`: a `..` above the root is never
                // sent by a browser; it is an attack, and servers clamp inconsistently.
                let parent = out.rfind('/').ok_or(PathRejection::EscapesRoot)?;
                out.truncate(parent);
            }
            // A real segment: if the path ends here it ends without a slash.
            _ if at_end => break false,
            _ => continue,
        }
        // A dot segment at the very end leaves a trailing slash (`/a/b/..` → `/a/`), as
        // RFC 3986 does: it names a directory.
        if at_end {
            break true;
        }
    };
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(CanonicalPath(out))
}

/// Characters that compatibility normalization maps to `.`, `/` or `\\`: fullwidth full
/// stop, solidus and reverse solidus, one and two dot leaders.
const LOOKALIKES: [char; 5] = ['\u{FF0E}', '\u{FF0F}', '\u{FF3C}', '\u{2024}', '\u{2025}'];

/// Decode the escape at `bytes[i]` (a '%') into `out`; returns the index after it.
///
/// Rule 2 — why: `%41` and `A` must route, authorize and rate-limit as the same path, so
/// escapes of unreserved characters are decoded (RFC 3986 §6.2.2.2 says they are
/// equivalent); every other escape is kept, in upper-case hex (§6.2.2.1), because decoding
/// it would change the meaning of the path. An encoded `%` is refused outright, so no
/// second layer of decoding upstream can produce a dot or a slash.
fn decode_escape(bytes: &[u8], i: usize, out: &mut String) -> Result<usize, PathRejection> {
    let v = hex_pair(bytes, i)?;
    if v < 0x80 {
        match CLASS[usize::from(v)] {
            UNRESERVED => out.push(char::from(v)),
            // Rule 3 — why: `%2F` is a separator to servers that decode before splitting
            // and data to those that do not; either reading could bypass a route rule.
            SLASH => return Err(PathRejection::EncodedSlash),
            BACKSLASH => return Err(PathRejection::Backslash),
            CONTROL => return Err(PathRejection::ControlCharacter),
            // Rule 3 — why: `%25XX` is a second layer of encoding; a server that decodes
            // twice reads `%252e%252e` as `..`, one that decodes once does not.
            _ if v == b'%' => return Err(PathRejection::DoubleEncoding),
            // `%3B` is a `;` to servers that decode before stripping matrix parameters.
            _ if v == b';' => return Err(PathRejection::MatrixParameters),
            _ => push_escape(out, v),
        }
        return Ok(i + 3);
    }
    // Rule 3 — why: escapes that are not UTF-8 (overlong `%C0%AE` = '.', lone `%FF`) are
    // decoded differently by different servers (some to '.', some to U+FFFD, some not at
    // all). The sequence must be a complete, shortest-form UTF-8 scalar value.
    let width = match v {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Err(PathRejection::InvalidUtf8),
    };
    let mut seq = [v, 0, 0, 0];
    let mut j = i + 3;
    for byte in seq.iter_mut().take(width).skip(1) {
        if bytes.get(j) != Some(&b'%') {
            return Err(PathRejection::InvalidUtf8);
        }
        *byte = hex_pair(bytes, j)?;
        j += 3;
    }
    // `from_utf8` rejects overlong forms, surrogates and values above U+10FFFF.
    let Ok(decoded) = std::str::from_utf8(&seq[..width]) else {
        return Err(PathRejection::InvalidUtf8);
    };
    // Why: servers that apply Unicode compatibility normalization (NFKC) turn these into
    // '.', '/' or '\' after the gateway has routed the path.
    if decoded.chars().any(|c| LOOKALIKES.contains(&c)) {
        return Err(PathRejection::Lookalike);
    }
    for &byte in &seq[..width] {
        push_escape(out, byte);
    }
    Ok(j)
}

/// The byte encoded by the two hex digits after the '%' at `bytes[i]`.
fn hex_pair(bytes: &[u8], i: usize) -> Result<u8, PathRejection> {
    let digit = |k: usize| {
        let c = *bytes.get(k)?;
        char::from(c).to_digit(16).map(|d| d as u8)
    };
    match (digit(i + 1), digit(i + 2)) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(PathRejection::InvalidPercentEncoding),
    }
}

fn push_escape(out: &mut String, v: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(v & 0x0f)]));
}

#[cfg(test)]
mod tests;
