//! Logging and metrics (checklist #7): what happened, for people and for Prometheus.
//!
//! Input: the request context and the final response. Output: one JSON line per request
//! on stdout, written when the response body has been sent (or abandoned), so the line
//! carries the real byte count and latency; and the counters and histogram behind
//! `/metrics`; alerts on spikes of security events (`alerts`); with the `otel` feature, one
//! OpenTelemetry span per request (`otel`). Failure: none; observing
//! never changes a response.

mod access;
pub mod alerts;
pub mod clock;
pub mod json_line;
mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
pub mod output;
pub mod redact;
pub mod security;

pub use access::{LoggedBody, redact_query};
pub use metrics::Metrics;

use tracing_subscriber::EnvFilter;

use crate::config::LogOutput;

/// Installs the JSON-lines logger writing to `output` (through the writer thread of
/// `output`), every line masked by `redact` on its way out. `PALISADE_LOG` overrides the
/// filter (`tracing` directive syntax, e.g. `debug` or `info,palisade_gateway=debug`).
///
/// Failure: the log file cannot be opened (the message says which and why).
pub fn init_logging(output: &LogOutput) -> Result<(), String> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rustls=warn,hyper=warn,hyper_util=warn"));
    let lines = tracing_subscriber::fmt::layer()
        .event_format(json_line::JsonLine)
        .with_writer(|| redact::MaskedLine)
        .with_filter(filter);
    output::start(output).map_err(|e| match output {
        LogOutput::File { path, .. } => format!("cannot open the log file {}: {e}", path.display()),
        LogOutput::Stdout => format!("cannot start the log writer: {e}"),
    })?;
    // `try_init` so that tests which start several gateways in one process do not panic.
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(security::SecurityEventLayer)
        .try_init();
    Ok(())
}

/// Installs the same JSON-lines format on stderr, written at once (no writer thread): for
/// short commands whose stdout is their output (`palisade keys`), so their security events
/// (`key_created`, `key_revoked`) reach the operator's log collection in the gateway's schema.
pub fn init_stderr_logging() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_env("PALISADE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        .event_format(json_line::JsonLine)
        .with_writer(|| redact::MaskedStderr)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(lines).try_init();
}
