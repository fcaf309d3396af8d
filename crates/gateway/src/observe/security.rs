//! Security events: the one schema they share ([`security_event!`]), and the counters taken
//! from the log events themselves; the same events feed the alert rules (`alerts`).
//!
//! Every security event carries `event`, `request_id`, `client_ip`, `route`, `subject`,
//! `key_id` and `reason` (`-` where it does not apply, such as the request fields of a
//! config reload), then fields of its own. The macro is the only way events are written,
//! so a site cannot leave one out.
//!
//! Why a tracing layer: every security event is already logged at one place with its
//! `event`, `reason` and `route` fields; counting what is logged means a new event site
//! cannot be forgotten in the metrics, and the two can never disagree. The layer sees
//! events whatever the log filter lets through, so `PALISADE_LOG=error` does not blind
//! the metrics.

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The fields every security event carries: who, from where, on which route.
pub struct Scope<'a> {
    pub request_id: &'a str,
    pub client_ip: ClientIp,
    pub route: &'a str,
    pub subject: &'a str,
    pub key_id: &'a str,
}

impl<'a> Scope<'a> {
    /// An event about a request: its id, client, route and (once authenticated) principal.
    pub fn of(ctx: &'a crate::ctx::RequestCtx) -> Self {
        Scope {
            request_id: ctx.id.as_str(),
            client_ip: ClientIp(Some(ctx.client_ip)),
            route: ctx.route.as_deref().unwrap_or("-"),
            subject: ctx.subject.as_deref().unwrap_or("-"),
            key_id: ctx.key_id.as_deref().unwrap_or("-"),
        }
    }

    /// An event outside any proxied request (a reload, an admin call, an alert).
    pub fn outside() -> Self {
        Scope {
            request_id: "-",
            client_ip: ClientIp(None),
            route: "-",
            subject: "-",
            key_id: "-",
        }
    }

    /// The key id the event is about (a presented but unverified one, for `auth_failed`).
    pub fn key_id(mut self, key_id: Option<&'a str>) -> Self {
        if let Some(key_id) = key_id {
            self.key_id = key_id;
        }
        self
    }

    pub fn route(mut self, route: Option<&'a str>) -> Self {
        if let Some(route) = route {
            self.route = route;
        }
        self
    }

    pub fn subject(mut self, subject: Option<&'a str>) -> Self {
        if let Some(subject) = subject {
            self.subject = subject;
        }
        self
    }

    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = ClientIp(Some(ip));
        self
    }
}

/// A client address, or `-` when there is none.
pub struct ClientIp(Option<IpAddr>);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Logs a security event in the shared schema:
/// `security_event!(level, scope, "event", reason, own_field = value, …)`.
macro_rules! security_event {
    ($level:ident, $scope:expr, $event:literal, $reason:expr $(, $($field:tt)*)?) => {{
        let scope: $crate::observe::security::Scope<'_> = $scope;
        ::tracing::$level!(
            event = $event,
            request_id = scope.request_id,
            client_ip = %scope.client_ip,
            route = scope.route,
            subject = scope.subject,
            key_id = scope.key_id,
            reason = $reason,
            $($($field)*)?
        )
    }};
}
pub(crate) use security_event;

/// A key's life event written by a tool outside the gateway (`palisade keys`).
#[derive(Clone, Copy, Debug)]
pub enum KeyEvent {
    /// `key_created`, reason `created` or `rotated` (then `replaces` names the old key).
    Created { rotated: bool },
    /// `key_revoked`.
    Revoked,
}

/// Logs `event` about key `key_id` in the shared schema, as the admin API does for the same
/// change; `actor` says who made it (`cli`), so an audit sees every change whatever its path.
pub fn key_event(
    event: KeyEvent,
    key_id: &str,
    subject: Option<&str>,
    replaces: Option<&str>,
    actor: &'static str,
) {
    let scope = || Scope::outside().key_id(Some(key_id)).subject(subject);
    match event {
        KeyEvent::Created { rotated } => security_event!(
            info,
            scope(),
            "key_created",
            if rotated { "rotated" } else { "created" },
            replaces,
            actor,
        ),
        KeyEvent::Revoked => security_event!(info, scope(), "key_revoked", actor, actor),
    }
}

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
            .filter(|e| crate::config::SECURITY_EVENTS.contains(&e.as_str()))
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

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
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
