//! OpenTelemetry traces (cargo feature `otel`): one span per request, sent over OTLP/HTTP.
//!
//! Input: every finished request (its context and status), handed over by the access log's
//! `LoggedBody` when the response body ends; the `[telemetry]` of the running config. Output:
//! one `SERVER` span per sampled request, named after its route (`unmatched` without one),
//! with the request id as `palisade.request_id`; spans are POSTed in batches, as OTLP/JSON,
//! to `<otlp_endpoint>/v1/traces` by a background task. Failure: a collector that is down,
//! slow or refusing costs only that task's time; requests never wait on it: the hand-off is
//! a `try_send` on a bounded queue, and a full queue (or a failed export) drops spans and
//! counts them in `palisade_otel_spans_dropped_total{reason}`, with one `otel_export_failed`
//! line when exports start failing and one `otel_export_recovered` line when they succeed
//! again, so a gap in the traces is never silent and never floods the log.
//!
//! Why hand-written rather than the opentelemetry crates: see the README ("Tracing"); in
//! short, the exporter is ~300 lines on crates palisade already has (reqwest on aws-lc-rs,
//! serde_json), where the SDK brings ~40 crates, a second reqwest and a protobuf stack.
//!
//! The exporter lives in a process-wide slot that `Server::start` fills and each reload
//! replaces only when `[telemetry]` changed, so a reload keeps queued spans.

use std::cell::Cell;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::redact::mask;
use crate::config::TelemetryConfig;
use crate::ctx::RequestCtx;

/// Spans waiting for the exporter; beyond this new spans are dropped (and counted).
const QUEUE: usize = 4096;
/// Spans per export request (a collector's default limits are far above this).
const BATCH: usize = 512;
/// Longest a span waits for its batch to fill before it is sent anyway.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Bound on one export: connect, send and the response head.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `queue_full` (the exporter could not keep up) or `export_failed` (the collector
    /// refused the batch or could not be reached).
    reason: String,
}

/// Spans dropped in this process, by why.
pub static DROPPED: LazyLock<Family<DropLabels, Counter>> = LazyLock::new(Family::default);
/// Spans the collector accepted.
pub static EXPORTED: LazyLock<Counter> = LazyLock::new(Counter::default);

fn dropped(reason: &str, spans: u64) {
    DROPPED
        .get_or_create(&DropLabels {
            reason: reason.to_owned(),
        })
        .inc_by(spans);
}

/// One finished request, as the exporter needs it: owned, so the request's memory is free.
#[derive(Debug)]
/// Of its strings only `path` comes from the client (masked when recorded): the request id
/// is the gateway's own, route and upstream are config names, the method is a known name.
struct Span {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    route: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    request_id: String,
    method: &'static str,
    path: Option<String>,
    https: bool,
    client_ip: std::net::IpAddr,
    status: u16,
    start_ns: u128,
    end_ns: u128,
}

enum Message {
    Span(Box<Span>),
    /// Export everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

struct Exporter {
    config: TelemetryConfig,
    queue: mpsc::Sender<Message>,
}

static ACTIVE: ArcSwapOption<Exporter> = ArcSwapOption::const_empty();

/// Sets the exporter for the running config. The first call (and any call after the
/// runtime of the previous exporter ended) spawns the export task on the current tokio
/// runtime; a reload with the same `[telemetry]` keeps the running one; `None` stops
/// tracing (the old task sends what it has queued, then ends).
pub fn install(config: Option<&TelemetryConfig>) {
    let Some(config) = config else {
        ACTIVE.store(None);
        return;
    };
    if let Some(running) = ACTIVE.load_full()
        && !running.queue.is_closed()
        && running.config.same_as(config)
    {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(EXPORT_TIMEOUT)
        // A redirect would send the spans (and any credentials) somewhere unnamed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(event = "otel_exporter_unavailable", error = %error.without_url());
            ACTIVE.store(None);
            return;
        }
    };
    let (queue, spans) = mpsc::channel(QUEUE);
    tokio::spawn(export_all(spans, client, config.clone()));
    ACTIVE.store(Some(Arc::new(Exporter {
        config: config.clone(),
        queue,
    })));
}

/// Hands a finished request to the exporter, if tracing is on and the request is sampled.
/// Never blocks: a full queue drops the span and counts it.
pub fn record(ctx: &RequestCtx, status: u16) {
    let active = ACTIVE.load();
    let Some(exporter) = active.as_ref() else {
        return;
    };
    let trace_id = random_id::<16>();
    // Sampled by the trace id's top 53 bits, as the OTel `TraceIdRatioBased` sampler does
    // with its low 64: the decision is uniform and needs no second random draw.
    let ratio = exporter.config.sample_ratio;
    if ratio < 1.0 {
        let bits = u64::from_be_bytes(trace_id[..8].try_into().unwrap_or_default()) >> 11;
        if (bits as f64) / ((1u64 << 53) as f64) >= ratio {
            return;
        }
    }
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = end.saturating_sub(ctx.started.elapsed());
    let span = Span {
        trace_id,
        span_id: random_id::<8>(),
        route: ctx.route.clone(),
        upstream: ctx.upstream.clone(),
        request_id: ctx.id.as_str().to_owned(),
        method: method_name(&ctx.method),
        // The path is client text: masked by the log's rules, as the access log's copy is
        // (a key or card number in it must not reach the collector either).
        path: ctx.path.as_ref().map(|p| mask(p.as_str()).into_owned()),
        https: ctx.conn.tls,
        client_ip: ctx.client_ip,
        status,
        start_ns: start.as_nanos(),
        end_ns: end.as_nanos(),
    };
    if let Err(error) = exporter.queue.try_send(Message::Span(Box::new(span))) {
        let reason = match error {
            mpsc::error::TrySendError::Full(_) => "queue_full",
            mpsc::error::TrySendError::Closed(_) => "export_failed",
        };
        dropped(reason, 1);
    }
}

/// Exports every span queued so far, waiting at most `timeout`: called at shutdown, after
/// in-flight requests have finished, so their spans are not lost with the process.
pub async fn flush(timeout: Duration) {
    let Some(exporter) = ACTIVE.load_full() else {
        return;
    };
    let (done, wait) = oneshot::channel();
    let _ = tokio::time::timeout(timeout, async {
        if exporter.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    })
    .await;
}

/// The known methods by their names; any other method token (client text) is `_OTHER`,
/// as the HTTP semantic conventions ask, so a span never carries arbitrary input there.
fn method_name(method: &http::Method) -> &'static str {
    use http::Method as M;
    [
        M::GET,
        M::HEAD,
        M::POST,
        M::PUT,
        M::DELETE,
        M::PATCH,
        M::OPTIONS,
        M::TRACE,
        M::CONNECT,
    ]
    .iter()
    .find(|m| *m == method)
    .map_or("_OTHER", |m| match *m {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::OPTIONS => "OPTIONS",
        M::TRACE => "TRACE",
        _ => "CONNECT",
    })
}

/// A random non-zero id. Trace and span ids need to be unique, not secret: a per-thread
/// splitmix64 with a random seed costs a few nanoseconds per id, no system call.
fn random_id<const N: usize>() -> [u8; N] {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    let mut out = [0u8; N];
    STATE.with(|state| {
        for chunk in out.chunks_mut(8) {
            let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
        }
    });
    if out.iter().all(|b| *b == 0) {
        out[N - 1] = 1;
    }
    out
}

/// std's `RandomState` keys come from the OS RNG (once per thread, then stepped), which is
/// all a seed for unique ids needs.
fn seed() -> u64 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(0x7061_6c69_7361_6465_u64)
}

/// The export task: batches of up to [`BATCH`] spans, sent when full or [`BATCH_DELAY`]
/// after their first span; one export at a time, so a slow collector backs spans up into
/// the bounded queue (and drops there), never into requests.
async fn export_all(
    mut queue: mpsc::Receiver<Message>,
    client: reqwest::Client,
    config: TelemetryConfig,
) {
    let mut sender = Sender {
        client,
        config,
        failing: false,
    };
    let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
    let mut deadline = Instant::now();
    loop {
        let message = if batch.is_empty() {
            queue.recv().await
        } else {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(message) => message,
                Err(_) => {
                    sender.export(&mut batch).await;
                    continue;
                }
            }
        };
        match message {
            Some(Message::Span(span)) => {
                if batch.is_empty() {
                    deadline = Instant::now() + BATCH_DELAY;
                }
                batch.push(*span);
                if batch.len() >= BATCH {
                    sender.export(&mut batch).await;
                }
            }
            Some(Message::Flush(done)) => {
                sender.export(&mut batch).await;
                let _ = done.send(());
            }
            // Replaced by a reload, or tracing turned off: send what is left and end.
            None => {
                sender.export(&mut batch).await;
                return;
            }
        }
    }
}

struct Sender {
    client: reqwest::Client,
    config: TelemetryConfig,
    /// The last export failed: log again only once one succeeds.
    failing: bool,
}

impl Sender {
    async fn export(&mut self, batch: &mut Vec<Span>) {
        if batch.is_empty() {
            return;
        }
        let body = encode(&self.config.service_name, batch);
        let spans = batch.len() as u64;
        batch.clear();
        let mut request = self
            .client
            .post(self.config.traces_url.expose_secret())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in &self.config.headers {
            request = request.header(name, value.expose_secret());
        }
        // Neither the URL nor the headers are logged: both may carry credentials.
        let failure = match request.send().await {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(("status", Some(response.status().as_u16()))),
            Err(error) if error.is_timeout() => Some(("timeout", None)),
            Err(error) if error.is_connect() => Some(("connect", None)),
            Err(_) => Some(("error", None)),
        };
        match failure {
            None => {
                EXPORTED.inc_by(spans);
                if self.failing {
                    self.failing = false;
                    tracing::info!(event = "otel_export_recovered");
                }
            }
            Some((reason, status)) => {
                dropped("export_failed", spans);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        event = "otel_export_failed",
                        reason,
                        status,
                        spans,
                        "spans are dropped until the collector accepts them again"
                    );
                }
            }
        }
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans` (ids as hex, 64-bit integers as
/// strings, as the OTLP/JSON mapping asks).
fn encode(service_name: &str, spans: &[Span]) -> Vec<u8> {
    let spans: Vec<Value> = spans.iter().map(span_json).collect();
    let request = json!({
        "resourceSpans": [{
            "resource": { "attributes": [
                string_attribute("service.name", service_name),
                string_attribute("service.version", env!("CARGO_PKG_VERSION")),
            ]},
            "scopeSpans": [{
                "scope": { "name": "palisade", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    });
    serde_json::to_vec(&request).unwrap_or_default()
}

fn span_json(span: &Span) -> Value {
    let mut attributes = vec![
        string_attribute("palisade.request_id", &span.request_id),
        string_attribute("http.request.method", span.method),
        string_attribute("url.scheme", if span.https { "https" } else { "http" }),
        int_attribute("http.response.status_code", span.status),
        string_attribute("client.address", &span.client_ip.to_string()),
    ];
    if let Some(path) = &span.path {
        attributes.push(string_attribute("url.path", path));
    }
    if let Some(route) = &span.route {
        attributes.push(string_attribute("palisade.route", route));
    }
    if let Some(upstream) = &span.upstream {
        attributes.push(string_attribute("palisade.upstream", upstream));
    }
    // HTTP semantic conventions: a server span is an error for 5xx only (4xx is the
    // client's error), with the status code as its `error.type`.
    let status = if span.status >= 500 {
        attributes.push(string_attribute("error.type", &span.status.to_string()));
        json!({ "code": 2 })
    } else {
        json!({})
    };
    json!({
        "traceId": hex(&span.trace_id),
        "spanId": hex(&span.span_id),
        "name": span.route.as_deref().unwrap_or("unmatched"),
        "kind": 2,
        "startTimeUnixNano": span.start_ns.to_string(),
        "endTimeUnixNano": span.end_ns.to_string(),
        "attributes": attributes,
        "status": status,
    })
}

fn string_attribute(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn int_attribute(key: &str, value: u16) -> Value {
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_non_zero() {
        let a = random_id::<16>();
        let b = random_id::<16>();
        assert_ne!(a, b);
        assert!(a.iter().any(|x| *x != 0));
        assert_eq!(hex(&random_id::<8>()).len(), 16);
    }

    #[test]
    fn a_span_encodes_as_otlp_json() {
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            route: Some(Arc::from("orders")),
            upstream: None,
            request_id: "abc".to_owned(),
            method: "GET",
            path: Some("/orders/1".to_owned()),
            https: false,
            client_ip: "127.0.0.1".parse().unwrap(),
            status: 502,
            start_ns: 1,
            end_ns: 2,
        };
        let body: Value = serde_json::from_slice(&encode("svc", &[span])).unwrap();
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["name"], "orders");
        assert_eq!(span["traceId"], "01".repeat(16));
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(span["startTimeUnixNano"], "1");
        assert!(
            span["attributes"]
                .as_array()
                .unwrap()
                .contains(&int_attribute("http.response.status_code", 502))
        );
        assert_eq!(
            method_name(&http::Method::from_bytes(b"BREW").unwrap()),
            "_OTHER"
        );
    }
}
