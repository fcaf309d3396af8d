//! The access log: one JSON line per request, written when its body ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::Metrics;
use crate::body::{Body, BoxError};
use crate::ctx::RequestCtx;

/// Wraps a response body to count its bytes and log the request once it is done.
///
/// The line is written from `Drop`, which runs whether the body completed, failed, or
/// the client went away mid-stream: no request goes unlogged.
pub struct LoggedBody {
    inner: Body,
    bytes: u64,
    record: Option<Record>,
}

struct Record {
    ctx: RequestCtx,
    status: u16,
    metrics: Arc<Metrics>,
}

impl LoggedBody {
    pub fn new(inner: Body, ctx: RequestCtx, status: u16, metrics: Arc<Metrics>) -> Self {
        LoggedBody {
            inner,
            bytes: 0,
            record: Some(Record {
                ctx,
                status,
                metrics,
            }),
        }
    }

    fn finish(&mut self, completed: bool) {
        let Some(Record {
            ctx,
            status,
            metrics,
        }) = self.record.take()
        else {
            return;
        };
        let elapsed = ctx.started.elapsed();
        metrics.record_request(ctx.route.as_deref(), status, elapsed);
        #[cfg(feature = "otel")]
        super::otel::record(&ctx, status);
        let path = ctx.path.as_ref().map(|p| p.as_str()).unwrap_or("-");
        let path = match &ctx.query {
            Some(query) => format!("{path}?{}", redact_query(query)),
            None => path.to_owned(),
        };
        tracing::info!(
            event = "request",
            request_id = ctx.id.as_str(),
            client_ip = %crate::ctx::IpText(ctx.client_ip),
            method = ctx.method.as_str(),
            route = ctx.route.as_deref().unwrap_or("-"),
            subject = ctx.subject.as_deref().unwrap_or("-"),
            key_id = ctx.key_id.as_deref().unwrap_or("-"),
            path = %path,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            bytes = self.bytes,
            upstream = ctx.upstream.as_deref().unwrap_or("-"),
            rate_limit_fallback = ctx.rate_limit_fallback,
            completed,
        );
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // An empty body may never be polled; it was still sent in full.
        let completed = self.inner.is_end_stream();
        self.finish(completed);
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps the names of query parameters and hides their values: a query string is where
/// tokens, keys and e-mail addresses end up, and the log must not hold them.
///
/// A part without `=` may itself be the secret (`?sk_live_…`), and a name that is not a
/// plain identifier may be one too: both are logged as `***`.
pub fn redact_query(query: &str) -> String {
    let plain_name = |name: &str| {
        (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']'))
    };
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if plain_name(name) => format!("{name}=***"),
            _ => "***".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_redacted_names_kept() {
        assert_eq!(redact_query("page=2&token=abc"), "page=***&token=***");
        assert_eq!(redact_query("flag&x="), "***&x=***");
        assert_eq!(
            redact_query("sk_live_51HxSECRET&eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln=1"),
            "***&***"
        );
    }
}
