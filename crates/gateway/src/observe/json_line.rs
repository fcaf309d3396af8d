//! The format of every log line: one JSON object, `timestamp` and `level` first, then the
//! event's fields in the order they were written, flat (no nesting, no target, no spans).
//!
//! Why not tracing-subscriber's JSON formatter: it collects the fields into a serde map
//! and formats each `%value` into a string of its own before serializing, and on the access
//! log (a line per request) that was a tenth of the gateway's CPU. This writes each field
//! straight into the line. The output is the same: strings escaped as serde_json escapes
//! them, integers and booleans bare, floats as serde_json writes them (`null` when not
//! finite), `%` and `?` values as strings.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter of the log layer.
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        writer.write_str(&super::clock::rfc3339_micros(std::time::SystemTime::now()))?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'w, W: fmt::Write> {
    out: &'w mut W,
    /// The first write error; later fields are skipped.
    result: fmt::Result,
}

impl<W: fmt::Write> Fields<'_, W> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_str(",\"")?;
            Escaped(&mut *self.out).write_str(field.name())?;
            self.out.write_str("\":")?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| {
            out.write_char('"')?;
            Escaped(&mut *out).write_str(value)?;
            out.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` arrives here as a Debug wrapper that prints its Display form.
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(&mut *out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(&mut *out), "{value}")?;
            out.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |out| match serde_json::Number::from_f64(value) {
            Some(number) => write!(out, "{number}"),
            None => out.write_str("null"),
        });
    }
}

/// Escapes what passes through for the inside of a JSON string, as serde_json does:
/// `"`, `\` and control characters; everything else (UTF-8 included) as is.
struct Escaped<'w, W: fmt::Write>(&'w mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain_from = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain_from..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain_from = at + 1;
        }
        self.0.write_str(&text[plain_from..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures the lines one subscriber with this formatter writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines written while `log` runs: raw, and parsed.
    fn lines_of(log: impl FnOnce()) -> (String, Vec<serde_json::Value>) {
        use tracing_subscriber::layer::SubscriberExt as _;
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLine)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        let parsed = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        (text, parsed)
    }

    #[test]
    fn fields_are_flat_typed_and_in_order() {
        let peer: std::net::IpAddr = "203.0.113.7".parse().unwrap();
        let (text, lines) = lines_of(|| {
            tracing::warn!(
                event = "request",
                client_ip = %peer,
                status = 404u16,
                offset = -3i64,
                latency_ms = 1.25f64,
                nan = f64::NAN,
                completed = true,
                debug = ?Some("x"),
                "a message"
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        let names = [
            "timestamp",
            "level",
            "message",
            "event",
            "client_ip",
            "status",
            "offset",
            "latency_ms",
            "nan",
            "completed",
            "debug",
        ];
        assert_eq!(line.as_object().unwrap().len(), names.len(), "{text}");
        let positions: Vec<usize> = names
            .iter()
            .map(|name| text.find(&format!("\"{name}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "in the order written: {text}");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "a message");
        assert_eq!(line["client_ip"], "203.0.113.7");
        assert_eq!(line["status"], 404);
        assert_eq!(line["offset"], -3);
        assert_eq!(line["latency_ms"], 1.25);
        assert_eq!(line["nan"], serde_json::Value::Null);
        assert_eq!(line["completed"], true);
        assert_eq!(line["debug"], "Some(\"x\")");
        let timestamp = line["timestamp"].as_str().unwrap();
        assert_eq!(
            timestamp.len(),
            "2026-11-30T04:54:19.123456Z".len(),
            "{timestamp}"
        );
        assert!(timestamp.ends_with('Z'));
    }

    #[test]
    fn strings_that_try_to_break_the_line_stay_inside_their_field() {
        let hostile = "a\"b\\c\nd\r\te\u{1}f\u{7f}é\"}, \"level\":\"ERROR";
        let (_, lines) = lines_of(|| {
            tracing::info!(path = hostile, shown = %hostile);
        });
        assert_eq!(lines.len(), 1, "one line, whatever the value holds");
        assert_eq!(lines[0]["path"], hostile);
        assert_eq!(lines[0]["shown"], hostile);
        assert_eq!(lines[0]["level"], "INFO");
    }

    #[test]
    fn escaping_matches_serde_json() {
        let text = "q\"\\\u{0}\u{8}\u{c}\n\r\t\u{1f} ok ü";
        let mut ours = String::new();
        Escaped(&mut ours).write_str(text).unwrap();
        assert_eq!(format!("\"{ours}\""), serde_json::to_string(text).unwrap());
    }
}
