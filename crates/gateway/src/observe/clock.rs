//! UTC calendar dates from Unix time, for log lines, alert payloads and key listings.
//!
//! Why not a date crate: three formatters of one instant are all that is needed, and the
//! conversion is a dozen lines of integer arithmetic (Howard Hinnant's published
//! civil-from-days algorithm, proleptic Gregorian calendar).

use std::time::SystemTime;

/// Days since 1970-01-01 → (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds → (year, month, day, hour, minute, second), UTC.
pub fn utc_parts(seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let time = seconds.rem_euclid(86_400) as u32;
    (year, month, day, time / 3600, time % 3600 / 60, time % 60)
}

/// `2026-11-30T04:54:19Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_parts(unix_seconds(at));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-11-30T04:54:19.123456Z`, as the log lines' timestamps.
///
/// Written digit by digit: every log line starts with one, and `format!` with six padded
/// fields cost more than the rest of the line's fixed text.
pub fn rfc3339_micros(at: SystemTime) -> String {
    let micros = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    let (y, mo, d, h, mi, s) = utc_parts(unix_seconds(at));
    let year = match u32::try_from(y) {
        Ok(year) if year <= 9999 => year,
        // Before year 0 or after 9999 (a clock gone wrong): the general form.
        _ => return format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z"),
    };
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], mo);
    put_digits(&mut text[8..10], d);
    put_digits(&mut text[11..13], h);
    put_digits(&mut text[14..16], mi);
    put_digits(&mut text[17..19], s);
    put_digits(&mut text[20..26], micros);
    // Digits and punctuation only: always UTF-8.
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

/// Writes `value` into `out` as decimal digits, zero-padded on the left to its length
/// (higher digits than fit are dropped: callers pass values that fit).
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_014_459_000_042);
        assert_eq!(rfc3339(at), "2026-11-30T04:54:19Z");
        assert_eq!(rfc3339_micros(at), "2026-11-30T04:54:19.000042Z");
        assert_eq!(utc_parts(-60), (1969, 12, 31, 23, 59, 0));
        let at = |s| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn micro_timestamps_match_the_formatted_form() {
        for micros in [
            0,
            999_999,
            1_796_014_459_000_042,
            951_782_400_123_456,
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999Z
            253_402_300_800_000_000, // year 10000: five digits
        ] {
            let at = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
            let (y, mo, d, h, mi, s) = utc_parts(unix_seconds(at));
            let sub = micros % 1_000_000;
            let expected = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{sub:06}Z");
            assert_eq!(rfc3339_micros(at), expected);
        }
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(253_402_300_800_000_000);
        assert_eq!(rfc3339_micros(at), "10000-01-01T00:00:00.000000Z");
    }
}
