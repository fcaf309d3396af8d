//! Prometheus metrics, shared by every pipeline a reload builds.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// Route name, or `-` for requests that matched no route. Bounded by the config.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    /// `unavailable`, `timeout` or `status`.
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    /// Policy name (bounded by the config), or `auth_failures`.
    policy: String,
    /// What the policy counts by: `ip`, `client`, `account`, …
    per: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    /// `ok`, `timeout`, `error` or `resting` (skipped after a recent failure).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    /// `local`, `deny` or `allow`.
    mode: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Every metric the gateway exports, registered once per process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    upstream_errors: Family<UpstreamLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    rate_limited: Family<PolicyLabels, Counter>,
    rate_store_calls: Family<StoreLabels, Counter>,
    rate_store_fallbacks: Family<FallbackLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let requests = Family::<RequestLabels, Counter>::default();
        // 250 µs to ~8 s in doublings: a gateway's own cost and a slow upstream both show.
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.00025, 2.0, 16)));
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request arrival to the end of the response body, by route",
            latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream failures, by upstream and reason",
            upstream_errors.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads, by result",
            reloads.clone(),
        );
        let rate_limited = Family::<PolicyLabels, Counter>::default();
        let rate_store_calls = Family::<StoreLabels, Counter>::default();
        let rate_store_fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "security_events",
            "Security events logged, by event, reason and route",
            super::security::COUNTS.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log writer could not keep up or failed",
            super::output::DROPPED.clone(),
        );
        registry.register(
            "alerts_fired",
            "Alerts fired, by rule",
            super::alerts::FIRED.clone(),
        );
        registry.register(
            "alert_webhook_failures",
            "Alert deliveries given up (after retries) or dropped, by reason",
            super::alerts::WEBHOOK_FAILURES.clone(),
        );
        #[cfg(feature = "otel")]
        {
            registry.register(
                "otel_spans_dropped",
                "Request spans not exported: the queue was full or the collector failed, by reason",
                super::otel::DROPPED.clone(),
            );
            registry.register(
                "otel_spans_exported",
                "Request spans the OTLP collector accepted",
                super::otel::EXPORTED.clone(),
            );
        }
        registry.register(
            "rate_limited",
            "Requests refused with 429, by policy and what it counts by",
            rate_limited.clone(),
        );
        registry.register(
            "rate_limit_store_calls",
            "Calls to the shared (Redis) rate-limit store, by outcome",
            rate_store_calls.clone(),
        );
        registry.register(
            "rate_limit_store_fallbacks",
            "Decisions made by on_store_error because the shared store failed, by mode",
            rate_store_fallbacks.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            upstream_errors,
            reloads,
            rate_limited,
            rate_store_calls,
            rate_store_fallbacks,
        }
    }

    pub fn record_request(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        let route = route.unwrap_or("-").to_owned();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_upstream_error(&self, upstream: &str, reason: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn record_rate_limited(&self, policy: &str, per: &str) {
        self.rate_limited
            .get_or_create(&PolicyLabels {
                policy: policy.to_owned(),
                per: per.to_owned(),
            })
            .inc();
    }

    /// The counter of store calls with `outcome`, to keep (no label lookup per request).
    pub fn rate_store_calls(&self, outcome: &str) -> Counter {
        self.rate_store_calls
            .get_or_create(&StoreLabels {
                outcome: outcome.to_owned(),
            })
            .clone()
    }

    /// The counter of fallback decisions in `mode`, to keep.
    pub fn rate_store_fallbacks(&self, mode: &str) -> Counter {
        self.rate_store_fallbacks
            .get_or_create(&FallbackLabels {
                mode: mode.to_owned(),
            })
            .clone()
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histogram_appear_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.record_request(Some("orders"), 200, Duration::from_millis(3));
        metrics.record_request(None, 404, Duration::from_millis(1));
        metrics.record_upstream_error("orders", "timeout");
        let text = metrics.encode();
        assert!(
            text.contains(r#"palisade_requests_total{route="orders",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"palisade_requests_total{route="-",status="404"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"palisade_request_duration_seconds_count{route="orders"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"palisade_upstream_errors_total{upstream="orders",reason="timeout"} 1"#
            ),
            "{text}"
        );
    }
}
