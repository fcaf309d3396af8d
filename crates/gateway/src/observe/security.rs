//! Counters for security events, taken from the log events themselves; the same events
//! feed the alert rules (`alerts`).
//!
//! Why a tracing layer: every security event is already logged at one place with its
//! `event`, `reason` and `route` fields; counting what is logged means a new event site
//! cannot be forgotten in the metrics, and the two can never disagree. The layer sees
//! events whatever the log filter lets through, so `PALISADE_LOG=error` does not blind
//! the metrics.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The events counted: the security events of the checklist (others are operational).
pub const SECURITY_EVENTS: [&str; 11] = [
    "auth_failed",
    "forbidden",
    "owner_violation",
    "owner_bypass",
    "rate_limited",
    "invalid_request",
    "invalid_response",
    "upstream_error",
    "config_reloaded",
    "config_reload_failed",
    "key_revoked",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecurityLabels {
    event: String,
    /// The event's `reason` (a fixed word chosen by the code), or `-`.
    reason: String,
    /// The route name (bounded by the config), or `-`.
    route: String,
}

/// Counts of security events in this process, by event, reason and route.
pub static COUNTS: LazyLock<Family<SecurityLabels, Counter>> = LazyLock::new(Family::default);

/// The layer that feeds [`COUNTS`].
pub struct SecurityEventLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SecurityEventLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let Some(name) = fields
            .event
            .filter(|e| SECURITY_EVENTS.contains(&e.as_str()))
        else {
            return;
        };
        // The same fields feed the alert rules: one reading, one truth.
        super::alerts::observe(&name, fields.reason.as_deref(), fields.route.as_deref());
        COUNTS
            .get_or_create(&SecurityLabels {
                event: name,
                reason: fields.reason.unwrap_or_else(|| "-".to_owned()),
                route: fields.route.unwrap_or_else(|| "-".to_owned()),
            })
            .inc();
    }
}

#[derive(Default)]
struct Fields {
    event: Option<String>,
    reason: Option<String>,
    route: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "event" => &mut self.event,
            "reason" => &mut self.reason,
            "route" => &mut self.route,
            _ => return,
        };
        // Labels stay short: a reason or route name, never a client's text.
        *slot = Some(value.chars().take(64).collect());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "event" | "reason" | "route") {
            self.record_str(field, format!("{value:?}").trim_matches('"'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn security_events_are_counted_and_others_are_not() {
        let subscriber = tracing_subscriber::registry().with(SecurityEventLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                event = "auth_failed",
                reason = "bad_signature",
                route = "orders"
            );
            tracing::info!(
                event = "auth_failed",
                reason = "bad_signature",
                route = "orders"
            );
            tracing::info!(event = "request", route = "orders");
        });
        let count = |event: &str, reason: &str| {
            COUNTS
                .get_or_create(&SecurityLabels {
                    event: event.to_owned(),
                    reason: reason.to_owned(),
                    route: "orders".to_owned(),
                })
                .get()
        };
        assert_eq!(count("auth_failed", "bad_signature"), 2);
        assert_eq!(count("request", "-"), 0);
    }
}
