//! Rate limiting (checklist #4): the phase that applies `[rate_limit]`, route policies and
//! the failed-authentication lockout.
//!
//! Input: the route's policies (or `[rate_limit] default`), the request's client address,
//! headers, principal and body fields as each becomes known. Output: nothing, or the state
//! of the tightest policy for the `RateLimit` headers. Failure: `Rejection::RateLimited`
//! (429 with `Retry-After`, `RateLimit-Policy` and `RateLimit`) with a `rate_limited` event,
//! or `RateLimitUnavailable` (503) when the shared store fails under `on_store_error = "deny"`.
//!
//! Three passes, in pipeline order: `before_auth` counts what is known without credentials
//! (`ip`, `route`, a header) and refuses a locked-out address, so floods and brute force
//! are stopped before any crypto or store lookup, and a caller without credentials can
//! only spend quotas keyed on its own address; `after_auth` counts by `client`, `subject`
//! or `key`; `after_body` counts by body field and refuses a locked-out account. Within a
//! pass, a request is admitted only if every check admits it, and a refused request
//! consumes nothing. A 429 in a later pass does NOT give back what earlier passes took:
//! the quota counted before authentication bounds the authentication and body-parsing
//! work done for an address (or route, or header value), and all of those keys are the
//! requester's to choose, so refunding them would let a client stuck at its own limit (or
//! naming a locked account) make unbounded work from one address. A client that keeps
//! hammering is released once its rate drops, since GCRA recovers at the policy's rate.
//! Only a 503 from a later pass (the shared store unavailable under
//! `on_store_error = "deny"`, which the requester cannot cause) gives back what the
//! earlier passes took, kept per store in the request's context. `record_failure` charges the
//! lockout: for a 401 to a credential that could be a guess, and for a login the upstream
//! refused.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::memory::{Check, Op};
use super::store::{RateStore, Verdict};
use crate::authn::Principal;
use crate::config::{Config, PerKey, Policy, RouteAuth};
use crate::ctx::{IpText, RequestCtx};
use crate::observe::Metrics;
use crate::observe::security::{Scope, security_event};
use crate::quota::gcra::{Decision, Quota};
use crate::quota::state::{ChargedIn, LoginAttempt, RateLimitState};
use crate::rejection::Rejection;

struct Prepared {
    policy: Policy,
    name: Arc<str>,
    quota: Quota,
    /// The bucket namespace: route policies count per route, default ones across routes.
    scope: Arc<str>,
}

/// `[rate_limit] auth_failures`, ready to count.
struct Lockout {
    name: Arc<str>,
    limit: u32,
    window: Duration,
    quota: Quota,
    per_ip: bool,
    per_account: bool,
}

/// What the lockout applies to on one route.
struct RouteLimits {
    /// The route's own policies; empty: the default ones apply.
    policies: Vec<Prepared>,
    /// Presented credentials are checked here, so failures count and lockouts apply.
    authenticates: bool,
    /// `login.account`: the body field naming the account.
    login_account: Option<String>,
}

/// Why a check is in a call: a policy, or one half of the lockout.
#[derive(Clone, Copy)]
enum Source<'a> {
    Policy(&'a Prepared),
    Lockout(&'a Lockout, &'static str),
}

/// The rate-limit phase of one pipeline build. The stores are shared across reloads.
pub(crate) struct RateLimiter {
    store: RateStore,
    default: Vec<Prepared>,
    routes: Vec<RouteLimits>,
    lockout: Option<Lockout>,
    headers_always: bool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("default_policies", &self.default.len())
            .field("local_keys", &self.store.local_len())
            .finish()
    }
}

/// The body fields a route's limits need, read once by `ratelimit::body`.
#[derive(Debug, Default)]
pub(crate) struct BodyFields {
    /// Values by JSON pointer; a field that is absent (or not a scalar) is not listed.
    pub values: Vec<(String, String)>,
}

impl BodyFields {
    pub(crate) fn get(&self, pointer: &str) -> Option<&str> {
        (self.values.iter())
            .find(|(p, _)| p == pointer)
            .map(|(_, v)| v.as_str())
    }
}

impl RateLimiter {
    pub(crate) fn new(
        config: &Config,
        store: RateStore,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let prepare = |policy: &Policy, scope: &str| -> Result<Prepared, String> {
            Ok(Prepared {
                quota: Quota::new(policy.limit, policy.window, Some(policy.burst))?,
                name: policy.name.as_str().into(),
                policy: policy.clone(),
                scope: scope.into(),
            })
        };
        let default = (config.rate_limit.default.iter())
            .map(|p| prepare(p, "*"))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = (config.routes.iter())
            .map(|r| {
                Ok(RouteLimits {
                    policies: (r.rate_limit.iter())
                        .map(|p| prepare(p, &r.name))
                        .collect::<Result<Vec<_>, String>>()?,
                    authenticates: r.auth != RouteAuth::Public,
                    login_account: r.login.as_ref().map(|l| l.account.clone()),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let lockout = match &config.rate_limit.auth_failures {
            Some(a) => Some(Lockout {
                name: "auth_failures".into(),
                limit: a.limit,
                window: a.window,
                quota: Quota::new(a.limit, a.window, None)?,
                per_ip: a.per_ip,
                per_account: a.per_account,
            }),
            None => None,
        };
        Ok(RateLimiter {
            store,
            default,
            routes,
            lockout,
            headers_always: config.rate_limit.headers_always,
            metrics,
        })
    }

    fn policies(&self, route: usize) -> &[Prepared] {
        match self.routes.get(route) {
            Some(own) if !own.policies.is_empty() => &own.policies,
            _ => &self.default,
        }
    }

    /// Whether the lockout (and failure counting) applies on `route`.
    fn guarded(&self, route: usize) -> Option<&Lockout> {
        let limits = self.routes.get(route)?;
        self.lockout
            .as_ref()
            .filter(|_| limits.authenticates || limits.login_account.is_some())
    }

    /// The body fields `route`'s limits need (policies per body field, the login account
    /// for the lockout); empty when the body need not be read.
    pub(crate) fn body_fields(&self, route: usize) -> Vec<&str> {
        let mut pointers: Vec<&str> = (self.policies(route).iter())
            .filter_map(|p| match &p.policy.per {
                PerKey::Body(pointer) => Some(pointer.as_str()),
                _ => None,
            })
            .collect();
        if let Some(account) = self.login_account(route) {
            pointers.push(account);
        }
        pointers
    }

    /// The body field a login on `route` must name its account in, if failed logins are
    /// counted per account there.
    pub(crate) fn login_account_pointer(&self, route: usize) -> Option<&str> {
        self.guarded(route)?;
        self.login_account(route)
    }

    /// The login account pointer of `route`, when failed logins are counted per account.
    fn login_account(&self, route: usize) -> Option<&str> {
        self.lockout.as_ref().filter(|l| l.per_account)?;
        self.routes.get(route)?.login_account.as_deref()
    }

    /// Counts the policies keyed on what is known before authentication, and refuses an
    /// address locked out by `auth_failures`.
    pub(crate) async fn before_auth(
        &self,
        ctx: &mut RequestCtx,
        route: usize,
        headers: &HeaderMap,
    ) -> Result<(), Rejection> {
        // The address is written out only for a policy that counts by it.
        let client_ip = ctx.client_ip;
        let mut checks = self.policy_checks(route, |per| match per {
            PerKey::Ip => Some(IpText(client_ip).to_string()),
            PerKey::Route => Some(String::new()),
            PerKey::Header(name) => Some(
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
            ),
            _ => None,
        });
        // On a login route the attempt is charged now and refunded if it does not fail,
        // so requests in flight at once cannot all slip past the check.
        let login = self.is_login(route);
        let lockout = self.guarded(route).filter(|l| l.per_ip);
        if let Some(lockout) = lockout {
            let op = if login { Op::Take } else { Op::Peek };
            checks.push(lockout_check(
                lockout,
                "ip",
                &IpText(client_ip).to_string(),
                op,
            ));
        }
        if let Some(store) = self.run(ctx, &checks).await?
            && login
            && lockout.is_some()
        {
            ctx.login_attempt
                .get_or_insert_with(LoginAttempt::default)
                .ip = Some(store);
        }
        Ok(())
    }

    /// Counts the policies keyed on the verified caller.
    pub(crate) async fn after_auth(
        &self,
        ctx: &mut RequestCtx,
        route: usize,
        principal: &Principal,
    ) -> Result<(), Rejection> {
        let client_ip = ctx.client_ip;
        // Prefixes keep a subject named like a key id (or an address) in its own bucket.
        let checks = self.policy_checks(route, |per| match per {
            PerKey::Client => Some(match (principal.key_id(), principal.subject()) {
                (Some(key), _) => format!("key:{key}"),
                (None, Some(subject)) => format!("sub:{subject}"),
                (None, None) => format!("ip:{}", IpText(client_ip)),
            }),
            // Nothing to count by on an anonymous request: the ip policies cover those.
            PerKey::Subject => principal.subject().map(str::to_owned),
            PerKey::Key => principal.key_id().map(str::to_owned),
            _ => None,
        });
        self.run(ctx, &checks).await.map(|_| ())
    }

    /// Counts the policies keyed on body fields, and refuses an account locked out by
    /// `auth_failures`. A missing field counts under the empty value.
    pub(crate) async fn after_body(
        &self,
        ctx: &mut RequestCtx,
        route: usize,
        fields: &BodyFields,
    ) -> Result<(), Rejection> {
        let mut checks = self.policy_checks(route, |per| match per {
            PerKey::Body(pointer) => Some(fields.get(pointer).unwrap_or("").to_owned()),
            _ => None,
        });
        let account = (self.guarded(route)).zip(self.login_account_value(route, fields));
        if let Some((lockout, account)) = account {
            checks.push(lockout_check(lockout, "account", account, Op::Take));
        }
        if let Some(store) = self.run(ctx, &checks).await?
            && let Some((_, account)) = account
        {
            ctx.login_attempt
                .get_or_insert_with(LoginAttempt::default)
                .account = Some((account.to_owned(), store));
        }
        Ok(())
    }

    /// Gives back what a login attempt was charged in advance, once its answer shows it
    /// did not fail (anything but 401 or 403).
    pub(crate) async fn settle_login(&self, ctx: &mut RequestCtx, status: StatusCode) {
        let Some(attempt) = ctx.login_attempt.take() else {
            return;
        };
        let Some(lockout) = self.lockout.as_ref() else {
            return;
        };
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return;
        }
        let ip = IpText(ctx.client_ip).to_string();
        let mut checks = Vec::with_capacity(2);
        if let Some(store) = attempt.ip {
            checks.push((lockout_check(lockout, "ip", &ip, Op::Refund), store));
        }
        if let Some((account, store)) = &attempt.account {
            checks.push((
                lockout_check(lockout, "account", account, Op::Refund),
                *store,
            ));
        }
        // Never through `decide`: that asks whichever store answers now, which may not be
        // the one that took the charge.
        for store in [ChargedIn::Local, ChargedIn::Shared] {
            let refunds: Vec<Check<'_>> = (checks.iter())
                .filter(|(_, s)| *s == store)
                .map(|((_, key, quota, op), _)| Check {
                    key,
                    quota: *quota,
                    op: *op,
                })
                .collect();
            self.store
                .refund(&refunds, store == ChargedIn::Shared)
                .await;
        }
    }

    /// Records a failed authentication: presented credentials that could be a guess
    /// answered 401. Counts against the address. (Logins are charged in advance instead.)
    pub(crate) async fn record_failure(&self, ctx: &mut RequestCtx, route: usize) {
        let Some(lockout) = self.guarded(route).filter(|l| l.per_ip) else {
            return;
        };
        let ip = IpText(ctx.client_ip).to_string();
        let checks = [lockout_check(lockout, "ip", &ip, Op::Charge)];
        let (_, fallback) = self.store.decide(&as_checks(&checks)).await;
        if fallback.is_some() {
            ctx.rate_limit_fallback = fallback;
        }
    }

    /// The account a login request named, when failures are counted per account.
    pub(crate) fn login_account_value<'f>(
        &self,
        route: usize,
        fields: &'f BodyFields,
    ) -> Option<&'f str> {
        self.login_account(route)
            .and_then(|pointer| fields.get(pointer))
    }

    fn is_login(&self, route: usize) -> bool {
        (self.routes.get(route)).is_some_and(|r| r.login_account.is_some())
    }

    fn policy_checks<'a>(
        &'a self,
        route: usize,
        value_of: impl Fn(&PerKey) -> Option<String>,
    ) -> Vec<(Source<'a>, String, Quota, Op)> {
        let mut checks = Vec::new();
        for prepared in self.policies(route) {
            if let Some(value) = value_of(&prepared.policy.per) {
                // Joined, not formatted: one exact allocation per policy per request.
                let key = [
                    &*prepared.scope,
                    &*prepared.name,
                    prepared.policy.per.kind(),
                    &bounded(&value),
                ]
                .join("|");
                checks.push((Source::Policy(prepared), key, prepared.quota, Op::Take));
            }
        }
        checks
    }

    async fn run(
        &self,
        ctx: &mut RequestCtx,
        checks: &[(Source<'_>, String, Quota, Op)],
    ) -> Result<Option<ChargedIn>, Rejection> {
        if checks.is_empty() {
            return Ok(None);
        }
        let (verdict, fallback) = self.store.decide(&as_checks(checks)).await;
        if fallback.is_some() {
            ctx.rate_limit_fallback = fallback;
        }
        let decisions = match verdict {
            Verdict::Decided(decisions) => decisions,
            Verdict::Unavailable => {
                self.refund_taken(ctx).await;
                return Err(Rejection::RateLimitUnavailable);
            }
            Verdict::Unlimited => return Ok(None),
        };
        let refused = checks
            .iter()
            .zip(&decisions)
            .find_map(|(check, d)| match d {
                Decision::Deny { retry_after, reset } => Some((check.0, *retry_after, *reset)),
                Decision::Allow { .. } => None,
            });
        if let Some((source, retry_after, reset)) = refused {
            // No refund of earlier phases: their buckets (ip, route, header, all keyed on
            // what the requester controls) bound the work this request already caused.
            let (name, per, limit, window, reason) = match source {
                Source::Policy(p) => (
                    &p.name,
                    p.policy.per.kind(),
                    p.policy.limit,
                    p.policy.window,
                    "limit",
                ),
                Source::Lockout(lockout, per) => {
                    (&lockout.name, per, lockout.limit, lockout.window, "lockout")
                }
            };
            security_event!(
                info,
                Scope::of(ctx),
                "rate_limited",
                reason,
                policy = %name,
                per,
                retry_after_ms = retry_after.as_millis() as u64,
            );
            self.metrics.record_rate_limited(name, per);
            return Err(Rejection::RateLimited {
                state: RateLimitState {
                    policy: Arc::clone(name),
                    limit,
                    window,
                    remaining: 0,
                    reset,
                },
                retry_after,
            });
        }
        // Admitted: remember what this phase took, in the store that took it. (A login's
        // advance lockout charge is settled apart, by its answer: `settle_login`.)
        let local = !self.store.is_shared() || fallback.is_some();
        let taken = &mut ctx.rate_taken;
        let list = if local {
            &mut taken.local
        } else {
            &mut taken.shared
        };
        for (source, key, quota, op) in checks {
            if let (Source::Policy(_), Op::Take) = (source, op) {
                list.push((key.clone(), *quota));
            }
        }
        if self.headers_always {
            let tightest = (checks.iter().zip(&decisions))
                .filter_map(|((source, ..), d)| match (source, d) {
                    (Source::Policy(p), Decision::Allow { remaining, reset }) => {
                        Some(RateLimitState {
                            policy: p.name.clone(),
                            limit: p.policy.limit,
                            window: p.policy.window,
                            remaining: *remaining,
                            reset: *reset,
                        })
                    }
                    _ => None,
                })
                .min_by_key(|s| s.remaining);
            if let Some(tightest) = tightest
                && ctx
                    .rate_limit
                    .as_ref()
                    .is_none_or(|seen| tightest.remaining < seen.remaining)
            {
                ctx.rate_limit = Some(tightest);
            }
        }
        Ok(Some(if local {
            ChargedIn::Local
        } else {
            ChargedIn::Shared
        }))
    }

    /// Gives back what earlier phases of this request took, one store call per store:
    /// called only when a later phase answers 503 under `deny` (never on a 429).
    async fn refund_taken(&self, ctx: &mut RequestCtx) {
        let taken = std::mem::take(&mut ctx.rate_taken);
        for (list, shared) in [(&taken.local, false), (&taken.shared, true)] {
            let checks: Vec<Check<'_>> = (list.iter())
                .map(|(key, quota)| Check {
                    key,
                    quota: *quota,
                    op: Op::Refund,
                })
                .collect();
            self.store.refund(&checks, shared).await;
        }
    }
}

/// A lockout bucket: one per address or account, shared by every route (an account
/// locked out on one login route is locked out on all of them).
fn lockout_check<'a>(
    lockout: &'a Lockout,
    per: &'static str,
    value: &str,
    op: Op,
) -> (Source<'a>, String, Quota, Op) {
    let key = format!("!auth_failures|{per}|{}", bounded(value));
    (Source::Lockout(lockout, per), key, lockout.quota, op)
}

fn as_checks<'a>(checks: &'a [(Source<'_>, String, Quota, Op)]) -> Vec<Check<'a>> {
    (checks.iter())
        .map(|(_, key, quota, op)| Check {
            key,
            quota: *quota,
            op: *op,
        })
        .collect()
}

/// Values longer than 64 bytes (a header or body field can be kilobytes) are replaced by
/// their SHA-256, so the memory store's bound per key holds whatever clients send.
fn bounded(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= 64 {
        return value.into();
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    let hex: String = (digest.as_ref().iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::memory::MemoryStore;
    use crate::ratelimit::redis::{RETRY_INTERVAL, RedisStore};

    /// A login charged in this instance's memory while Redis rested is refunded there,
    /// even though Redis answers again when the login is settled: Redis never took the
    /// charge, so a refund sent to it would be lost and the address stay charged.
    #[tokio::test]
    async fn a_login_charged_locally_is_refunded_locally_after_redis_recovers() {
        let redis = palisade_testkit::RedisServer::start();
        let config = Config::from_str(
            r#"
[server]
http = "127.0.0.1:8080"

[rate_limit]
auth_failures = { limit = 2, window = "1h", per = ["ip"] }

[[upstream]]
name = "app"
url = "http://127.0.0.1:3000"

[[route]]
name = "login"
path = "/login"
methods = ["POST"]
upstream = "app"
auth = "public"
login = { account = "/username" }
"#,
            std::path::Path::new("palisade.toml"),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new());
        let local = Arc::new(MemoryStore::new(1000));
        let shared = RedisStore::connect(&redis.url()).unwrap();
        let store = RateStore::redis(
            shared,
            local.clone(),
            crate::config::OnStoreError::Local,
            Duration::from_secs(2),
            &metrics,
        );
        let limiter = RateLimiter::new(&config, store, metrics).unwrap();
        let quota = Quota::new(2, Duration::from_secs(3600), None).unwrap();
        let key = "!auth_failures|ip|192.0.2.1";
        let peek = || match local.check_all(&[Check {
            key,
            quota,
            op: Op::Peek,
        }])[0]
        {
            Decision::Allow { remaining, .. } => remaining,
            other => panic!("{other:?}"),
        };
        let fresh = peek();

        redis.stop();
        let conn = crate::ctx::ConnInfo {
            peer: "192.0.2.1:4000".parse().unwrap(),
            tls: false,
        };
        let mut ctx = RequestCtx::new(conn, http::Method::POST);
        limiter
            .before_auth(&mut ctx, 0, &HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(ctx.rate_limit_fallback, Some("local"));
        let attempt = ctx.login_attempt.clone().unwrap();
        assert_eq!(attempt.ip, Some(ChargedIn::Local));
        assert_eq!(peek(), fresh - 1, "charged in memory");

        // Redis answers again before the login is settled.
        redis.restart();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(RETRY_INTERVAL).await;
            let probe = [Check {
                key: "probe",
                quota,
                op: Op::Peek,
            }];
            if limiter.store.decide(&probe).await.1.is_none() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "Redis never answered");
        }
        limiter.settle_login(&mut ctx, StatusCode::OK).await;
        assert_eq!(peek(), fresh, "refunded in memory, where it was taken");
        assert!(redis.keys("palisade:rl:*").is_empty(), "Redis untouched");
    }
}
