//! Human-friendly units in the config: durations (`30s`) and byte sizes (`1MiB`).
//!
//! Input: a TOML string such as `"500ms"` or `"16KiB"` (a byte size may also be a bare
//! TOML integer, meaning bytes). Output: a `Duration` or a byte count. Failure: a message
//! that quotes the value and lists the accepted forms. A value too large to represent is
//! an error, never a panic or a silent wrap-around; a zero duration is an error because
//! every duration in the config is a timeout, and a zero timeout fails every request.
//!
//! Units are case-sensitive (`MB` is not `Mb`), there is no whitespace and no fraction:
//! the point is that a value reads the same to every reader.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as an integer and a unit: `500ms`, `30s`, `15m`, `1h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

/// Units and their length in milliseconds, largest first (the order `Display` tries).
const DURATION_UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// At least one non-zero digit, then a unit: zero is rejected by the schema too.
const DURATION_PATTERN: &str = "^[0-9]*[1-9][0-9]*(ms|s|m|h|d)$";

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid duration `{s}`: {why}");
        let usage = "expected an integer and a unit (ms, s, m, h, d) such as `30s`";
        if s.contains("${") {
            return Err(bad("`${…}` references are not supported in durations"));
        }
        let (digits, unit) = split_number(s);
        if digits.is_empty() {
            return Err(bad(usage));
        }
        let Some(&(_, millis_per_unit)) = DURATION_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(bad(usage));
        };
        // Only ASCII digits remain, so a parse failure can only be an overflow.
        let n: u64 = digits.parse().map_err(|_| bad("too large"))?;
        if n == 0 {
            return Err(bad("must be greater than zero"));
        }
        let millis = n
            .checked_mul(millis_per_unit)
            .ok_or_else(|| bad("too large"))?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that represents the value exactly, so `90s` prints as `90s`
    /// and `3600s` as `1h`: the output parses back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        for &(unit, per) in DURATION_UNITS {
            let per = u128::from(per);
            if millis != 0 && millis.is_multiple_of(per) {
                return write!(f, "{}{unit}", millis / per);
            }
        }
        write!(f, "{millis}ms")
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30s` (units: ms, s, m, h, d)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "An integer and a unit: `500ms`, `30s`, `15m`, `1h`, `1d`. Greater than zero.",
            "examples": ["500ms", "30s", "15m"],
        })
    }
}

/// A number of bytes: `1000B`, `10MB`, `512KiB`, `1MiB`, `1GiB`, or a bare integer (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Binary units first: `Display` prefers them, as the defaults are written in them.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

const BYTE_PATTERN: &str = "^[0-9]+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$";

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid size `{s}`: {why}");
        let usage = "expected an integer and an optional unit \
                     (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB) such as `1MiB`";
        if s.contains("${") {
            return Err(bad("`${…}` references are not supported in sizes"));
        }
        let (digits, unit) = split_number(s);
        if digits.is_empty() {
            return Err(bad(usage));
        }
        let per = if unit.is_empty() {
            1
        } else {
            match BYTE_UNITS.iter().find(|(u, _)| *u == unit) {
                Some(&(_, per)) => per,
                None => return Err(bad(usage)),
            }
        };
        let n: u64 = digits.parse().map_err(|_| bad("too large"))?;
        n.checked_mul(per)
            .map(ByteSize)
            .ok_or_else(|| bad("too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The first unit that represents the value exactly; `0` prints as `0B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &(unit, per) in BYTE_UNITS {
            if self.0 != 0 && self.0.is_multiple_of(per) {
                return write!(f, "{}{unit}", self.0 / per);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `1MiB` or an integer number of bytes")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size `{n}`: must not be negative")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // `pattern` constrains only strings and `minimum` only integers.
        json_schema!({
            "type": ["string", "integer"],
            "pattern": BYTE_PATTERN,
            "minimum": 0,
            "description": "A size: an integer and an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB) such as `1MiB`, or an integer number of bytes.",
            "examples": ["1MiB", "16KiB", 1024],
        })
    }
}

/// Splits `"30s"` into `("30", "s")` at the first non-digit.
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dur(s: &str) -> Result<Duration, String> {
        s.parse::<HumanDuration>().map(|d| d.0)
    }

    fn size(s: &str) -> Result<u64, String> {
        s.parse::<ByteSize>().map(|b| b.0)
    }

    #[test]
    fn durations_parse() {
        assert_eq!(dur("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(dur("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(dur("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(dur("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(dur("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(dur("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn bad_durations_are_rejected_with_the_value_quoted() {
        for bad in [
            "", "s", "30", "30 s", " 30s", "30S", "1.5s", "-5s", "+5s", "5sec", "5w", "ms",
        ] {
            let err = dur(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad:?}: {err}");
        }
        assert!(dur("0s").unwrap_err().contains("greater than zero"));
        assert!(dur("000ms").unwrap_err().contains("greater than zero"));
        assert!(dur("${env:T}").unwrap_err().contains("not supported"));
    }

    #[test]
    fn duration_overflow_is_an_error() {
        assert!(
            dur("99999999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            dur(&format!("{}d", u64::MAX / 1000))
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(
            dur(&format!("{}ms", u64::MAX)),
            Ok(Duration::from_millis(u64::MAX))
        );
    }

    #[test]
    fn duration_display_round_trips() {
        for s in ["500ms", "90s", "1h", "1d", "1500ms", "25h"] {
            assert_eq!(s.parse::<HumanDuration>().unwrap().to_string(), s);
        }
        assert_eq!("3600s".parse::<HumanDuration>().unwrap().to_string(), "1h");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("512KiB"), Ok(512 << 10));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("2TiB"), Ok(2 << 40));
        assert_eq!(size("10MB"), Ok(10_000_000));
        assert_eq!(size("3KB"), Ok(3_000));
        assert_eq!(size("1000B"), Ok(1000));
        assert_eq!(size("1024"), Ok(1024));
        assert_eq!(size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for bad in [
            "",
            "MiB",
            "1 MiB",
            "1mib",
            "1Mb",
            "1.5MiB",
            "-1",
            "1MiBs",
            "1kB",
            "${file:x}",
        ] {
            let err = size(bad).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad:?}: {err}");
        }
    }

    #[test]
    fn size_overflow_is_an_error() {
        assert!(
            size("18446744073709551616")
                .unwrap_err()
                .contains("too large")
        );
        assert!(size("17179869184GiB").unwrap_err().contains("too large"));
        assert_eq!(size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn size_display_round_trips() {
        for s in ["1MiB", "16KiB", "10MB", "1KB", "0B", "1001B"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
        assert_eq!("1024".parse::<ByteSize>().unwrap().to_string(), "1KiB");
    }

    #[derive(Debug, Deserialize)]
    struct Doc {
        d: Option<HumanDuration>,
        b: Option<ByteSize>,
    }

    #[test]
    fn deserialize_from_toml() {
        let doc: Doc = toml::from_str("d = \"2s\"\nb = 4096").unwrap();
        assert_eq!(doc.d, Some(HumanDuration(Duration::from_secs(2))));
        assert_eq!(doc.b, Some(ByteSize(4096)));
        let doc: Doc = toml::from_str("b = \"4KiB\"").unwrap();
        assert_eq!(doc.b, Some(ByteSize(4096)));

        let err = toml::from_str::<Doc>("b = -1").unwrap_err();
        assert!(err.message().contains("must not be negative"), "{err}");
        let err = toml::from_str::<Doc>("d = 30").unwrap_err();
        assert!(err.message().contains("a duration such as `30s`"), "{err}");
        let err = toml::from_str::<Doc>("d = \"0s\"").unwrap_err();
        assert!(err.message().contains("greater than zero"), "{err}");
    }

    #[test]
    fn schemas_carry_a_pattern() {
        let d = schemars::schema_for!(HumanDuration);
        assert_eq!(
            d.get("pattern").and_then(|p| p.as_str()),
            Some(DURATION_PATTERN)
        );
        let b = schemars::schema_for!(ByteSize);
        assert_eq!(
            b.get("pattern").and_then(|p| p.as_str()),
            Some(BYTE_PATTERN)
        );
    }
}
