//! The config exactly as the user writes it.
//!
//! Input: a TOML document. Output: these structs, through serde. Failure: toml's error for
//! a syntax error, an unknown key (`deny_unknown_fields` everywhere: a typo is an error,
//! never a silently ignored key), a missing required key or a wrongly typed value.
//!
//! Strings stay strings here: addresses, URLs, names and paths may contain `${env:…}` and
//! `${file:…}` references, which `validate` resolves before parsing them. Defaults live
//! here, next to their keys, so that the JSON Schema shows them.
//!
//! The doc comment on every field is that key's documentation: it becomes the schema's
//! description (`palisade config schema`) and the generated `docs/config-reference.md`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, HumanDuration};

/// Palisade gateway configuration.
///
/// Any string value may be, or contain, a reference resolved at load: `${env:NAME}` (an
/// environment variable) or `${file:PATH}` (a file relative to this file's directory, one
/// trailing newline removed). `$${` is a literal `${`. Keep secrets out of the file this way.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "palisade.toml")]
pub(crate) struct RawConfig {
    /// Listeners, the admin API and TLS.
    pub server: RawServer,
    /// Size and time limits applied to every request.
    #[serde(default)]
    pub limits: RawLimits,
    /// The services requests are forwarded to; routes refer to them by name.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<RawUpstream>,
    /// The requests palisade accepts; anything not matched by a route answers 404.
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
    /// Where API keys live. Needed by routes that accept API keys.
    pub store: Option<RawStore>,
    /// How callers authenticate besides API keys.
    #[serde(default)]
    pub auth: RawAuth,
    /// Rate limits (GCRA) and where their state lives.
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    /// An OpenAPI 3.0/3.1 spec: each operation becomes a validated route.
    pub openapi: Option<RawOpenApi>,
    /// Where the JSON log lines go. Read at start; a reload keeps the running output.
    #[serde(default)]
    pub log: RawLog,
    /// Where alerts go, and whether the built-in rules apply.
    #[serde(default)]
    pub alerts: RawAlerts,
    /// Alert rules: a spike of one security event (optionally of one route or reason)
    /// logs an `alert` event and is POSTed to the webhook.
    #[serde(default, rename = "alert")]
    pub alert_rules: Vec<RawAlert>,
    /// OpenTelemetry traces: one span per request, sent over OTLP/HTTP. Needs a palisade
    /// built with the `otel` feature.
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// Accept secrets (admin token, key pepper, JWT secret, passwords in store URLs, alert
    /// webhooks, OTLP credentials) written literally in this file. For development only: by default each must be a
    /// reference (`${env:NAME}`, `${file:PATH}`).
    #[serde(default)]
    pub allow_literal_secrets: bool,
}

/// The API's OpenAPI spec as the source of routes and schemas. An operation's policy
/// (auth, roles, scopes, owner, rate_limit, login, upstream, …: the `[[route]]` keys) goes in
/// its `x-palisade` extension; a `[[route]]` with the same path and method overrides it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "OpenApi")]
pub(crate) struct RawOpenApi {
    /// The spec file (YAML or JSON), relative to this file. Only local `$ref`s are
    /// followed; a remote one fails the load.
    pub spec: String,
    /// The upstream of operations whose `x-palisade` names none.
    pub upstream: Option<String>,
    /// `deny` (default): every `[[route]]` must be an operation of the spec, so the spec
    /// is the whole API; `allow`: routes outside it are served without validation.
    #[serde(default)]
    pub unknown_routes: RawUnknownRoutes,
    /// Unknown body members are refused (`additionalProperties: false` where the spec
    /// says nothing). `false` keeps them open.
    #[serde(default = "default_true")]
    pub strict: bool,
    /// JSON responses checked against the spec too: `off` (default), `log` (an
    /// `invalid_response` event), or `enforce` (also replaced by a generic 502), which
    /// catches leaks such as extra fields.
    #[serde(default)]
    pub validate_responses: RawValidateResponses,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "ValidateResponses")]
pub(crate) enum RawValidateResponses {
    #[default]
    Off,
    Log,
    Enforce,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "UnknownRoutes")]
pub(crate) enum RawUnknownRoutes {
    #[default]
    Deny,
    Allow,
}

/// Rate limiting: 429 with `Retry-After` and the IETF `RateLimit` headers.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "RateLimit")]
pub(crate) struct RawRateLimit {
    /// The policy (or policies) for every route that has no `rate_limit` of its own; its
    /// buckets are shared by all those routes (a client's overall budget).
    pub default: Option<RawPolicies>,
    /// `on_429` (default): the `RateLimit` headers on 429s only; `always`: on every
    /// response of a rate-limited route.
    pub headers: RawRateLimitHeaders,
    /// Most keys (clients, addresses, …) tracked at once by the in-memory store; idle keys
    /// are evicted first. Bounds its memory (see docs/rate-limiting.md).
    pub max_keys: u64,
    /// Where counts live: `memory` (this instance) or `redis://[:PASSWORD@]HOST:PORT/DB`,
    /// shared by every instance (use `${env:…}` for a URL with a password); any node of a
    /// Redis Cluster works too (detected, database 0; see docs/rate-limiting.md).
    pub store: String,
    /// When the Redis store fails or is slower than `store_timeout`: `local` counts in this
    /// instance's memory meanwhile, `deny` answers 503, `allow` lets requests through.
    pub on_store_error: RawOnStoreError,
    /// Longest wait for the Redis store on one request before `on_store_error` applies.
    pub store_timeout: HumanDuration,
    /// Locks out an address or an account (429) after repeated failed authentication:
    /// 401s to presented credentials, and failed logins on routes with `login`.
    pub auth_failures: Option<RawAuthFailures>,
}

#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "OnStoreError")]
pub(crate) enum RawOnStoreError {
    #[default]
    Local,
    Deny,
    Allow,
}

/// `limit` failures per `window` for each address and each account.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AuthFailures")]
pub(crate) struct RawAuthFailures {
    /// Failures tolerated per window before the lockout.
    pub limit: u32,
    /// The window, e.g. `15m`; a locked-out address or account gets one more try per
    /// `window / limit`.
    pub window: HumanDuration,
    /// What is counted: `ip` and/or `account` (the `login.account` field of login routes).
    #[serde(default = "default_auth_failures_per")]
    pub per: Vec<String>,
}

fn default_auth_failures_per() -> Vec<String> {
    vec!["ip".to_owned(), "account".to_owned()]
}

/// A login route: the account a login attempt names, so guesses are counted per account.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Login")]
pub(crate) struct RawLogin {
    /// JSON pointer to the account name in the request body (JSON, or a form field for
    /// `/name`), e.g. `/username`. The upstream's 401 or 403 counts as a failed login.
    pub account: String,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        RawRateLimit {
            default: None,
            headers: RawRateLimitHeaders::On429,
            max_keys: 1_000_000,
            store: "memory".to_owned(),
            on_store_error: RawOnStoreError::Local,
            store_timeout: HumanDuration(std::time::Duration::from_millis(50)),
            auth_failures: None,
        }
    }
}

#[derive(Deserialize, Serialize, JsonSchema, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "RateLimitHeaders")]
pub(crate) enum RawRateLimitHeaders {
    #[default]
    #[serde(rename = "on_429")]
    On429,
    Always,
}

/// One policy, or a list of them that must all pass.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum RawPolicies {
    One(RawPolicy),
    Many(Vec<RawPolicy>),
}

/// `limit` requests per `window` for each value of `per`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Policy")]
pub(crate) struct RawPolicy {
    /// Requests admitted per window.
    pub limit: u32,
    /// The window, e.g. `15m`.
    pub window: HumanDuration,
    /// What is counted: `ip`, `client` (API key or subject, else ip), `subject`, `key`,
    /// `route` (everyone together), `{ header = "X-Tenant" }`, or `{ body = "/username" }`
    /// (a JSON pointer into the request body, or a form field).
    pub per: RawPer,
    /// Requests admitted at once from a rested state. Default: `limit`.
    pub burst: Option<u32>,
    /// Name in headers, logs and metrics: letters, digits, `-`, `_` and `.`, at most 64.
    /// Default: derived from the route.
    pub name: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum RawPer {
    Kind(String),
    Header {
        /// Count per value of this request header.
        header: String,
    },
    Body {
        /// Count per value of this field of the request body.
        body: String,
    },
}

/// The key store: API keys, stored only as HMAC-SHA-256 with a server-side pepper.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Store")]
pub(crate) struct RawStore {
    /// `sqlite://palisade.db` (relative to this file's directory, created with its tables on
    /// first use) or `postgres://user@host/db` (revocations reach every instance through
    /// LISTEN/NOTIFY).
    pub url: String,
    /// The pepper mixed into every stored key hash: at least 32 characters, a secret, so write
    /// it as a reference (`${env:PALISADE_KEY_PEPPER}`). A leaked database without it yields
    /// no key. To rotate it, list `[new, old]` (up to 4): new keys use the first, keys made
    /// with an older one still verify and are re-hashed under the first at their next use;
    /// `palisade keys list` shows which pepper each key needs (see "Rotating secrets").
    pub key_pepper: RawSecrets,
    /// How long a rotated key keeps working beside its replacement.
    #[serde(default = "default_rotation_overlap")]
    pub rotation_overlap: HumanDuration,
}

fn default_rotation_overlap() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(24 * 3600))
}

/// A secret, or a list of them during a rotation, the current one first. Each is written as
/// a reference (`${env:…}`, `${file:…}`) unless `allow_literal_secrets`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(inline)]
pub(crate) enum RawSecrets {
    One(String),
    Many(Vec<String>),
}

impl RawSecrets {
    /// Each secret with the config key it is written at (`key`, or `key[i]` in a list).
    pub(crate) fn items<'a>(&'a self, key: &str) -> Vec<(String, &'a str)> {
        match self {
            RawSecrets::One(s) => vec![(key.to_owned(), s.as_str())],
            RawSecrets::Many(list) => (list.iter().enumerate())
                .map(|(i, s)| (format!("{key}[{i}]"), s.as_str()))
                .collect(),
        }
    }
}

// By hand rather than `untagged`: serde's untagged error ("did not match any variant")
// would not say what is expected.
impl<'de> Deserialize<'de> for RawSecrets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawSecrets;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or a list of strings (current first)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSecrets, E> {
                Ok(RawSecrets::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawSecrets, A::Error> {
                let mut list = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    list.push(s);
                }
                Ok(RawSecrets::Many(list))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Authentication methods.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Auth")]
pub(crate) struct RawAuth {
    /// JWT bearer tokens from one OpenID Connect / OAuth issuer.
    pub jwt: Option<RawJwt>,
}

/// JWT verification: signature, `exp`/`nbf`/`iat`, `iss` and `aud`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Jwt")]
pub(crate) struct RawJwt {
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Allowed algorithms: RS256/384/512, PS256/384/512, ES256/384, EdDSA, or HS256/384/512
    /// (only with `secret`, and then only HS*). `none` is never allowed.
    pub algorithms: Vec<String>,
    /// URL of the issuer's JWKS (https, or http on loopback only). One of `jwks_url`,
    /// `jwks_file`, `discovery_url`, `secret`.
    pub jwks_url: Option<String>,
    /// A JWKS file, relative to this file's directory; re-read on reload.
    pub jwks_file: Option<String>,
    /// OpenID Connect discovery document URL; its `jwks_uri` is used.
    pub discovery_url: Option<String>,
    /// Shared secret for HS256/384/512, at least 32 bytes: write it as a reference. To rotate
    /// it, list `[new, old]` (up to 4): a token signed with any of them verifies.
    pub secret: Option<RawSecrets>,
    /// Claim holding the caller's roles; a dotted path such as `realm_access.roles` is followed.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Longest token accepted.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: ByteSize,
    /// How often keys are refreshed when the JWKS response gives no `max-age`.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Least time between two refreshes triggered by unknown `kid`s, so a flood of forged
    /// tokens cannot hammer the issuer.
    #[serde(default = "default_jwks_cooldown")]
    pub jwks_cooldown: HumanDuration,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_leeway() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

fn default_max_token_bytes() -> ByteSize {
    ByteSize(8 << 10)
}

fn default_jwks_refresh() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(600))
}

fn default_jwks_cooldown() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

/// What a route demands of its callers.
#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawRouteAuth {
    /// No credentials needed.
    Public,
    /// An API key or a JWT.
    #[default]
    Any,
    /// A JWT only.
    Jwt,
    /// An API key only.
    ApiKey,
}

/// Listeners, the admin API and TLS. At least one of `http` and `https` is required.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Server")]
pub(crate) struct RawServer {
    /// Plain-HTTP listener, `IP:port` (e.g. `127.0.0.1:8080`, `[::1]:8080`). With
    /// `[server.tls]` it only redirects (308) to https.
    pub http: Option<String>,
    /// HTTPS listener, `IP:port`. Required exactly when `[server.tls]` is present.
    pub https: Option<String>,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`, `/reload`), `IP:port`. Absent: no
    /// admin listener. Keep it on a loopback or private address.
    pub admin: Option<String>,
    /// Bearer token for the admin API's write endpoints. A secret: write it as a reference,
    /// e.g. `${env:PALISADE_ADMIN_TOKEN}`. Required when `admin` is not a loopback address.
    pub admin_token: Option<String>,
    /// Peers whose `X-Forwarded-*` headers are trusted and extended rather than replaced:
    /// CIDR networks (`10.0.0.0/8`) or bare addresses (`::1`). A network must not have host
    /// bits set (`10.0.0.1/8` is an error). Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// TLS for the `https` listener.
    pub tls: Option<RawTls>,
}

/// TLS for the `https` listener: `cert` and `key`, or `self_signed = true`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Tls")]
pub(crate) struct RawTls {
    /// Certificate chain (PEM), relative to this file's directory. Requires `key`.
    pub cert: Option<String>,
    /// Private key (PEM), relative to this file's directory. Requires `cert`.
    pub key: Option<String>,
    /// Generate a self-signed certificate at start, for development (`palisade check`
    /// flags it). Exclusive with `cert` and `key`.
    #[serde(default)]
    pub self_signed: bool,
    /// The `Strict-Transport-Security` header sent on every https response. Must start with
    /// `max-age=` and a number of seconds.
    #[serde(default = "default_hsts")]
    pub hsts: String,
}

fn default_hsts() -> String {
    "max-age=31536000".to_owned()
}

/// Size and time limits applied to every request.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Log")]
pub(crate) struct RawLog {
    /// Write the log to this file (relative to this file) instead of stdout, created
    /// readable by the owner only and rotated by size.
    pub file: Option<String>,
    /// Size at which the log file moves aside to `FILE.1` (`FILE.1` to `FILE.2`, …).
    /// At least 4KiB.
    pub max_size: ByteSize,
    /// Rotated files kept besides the current one; the oldest is deleted.
    pub keep: u32,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            file: None,
            max_size: ByteSize(100 << 20),
            keep: 5,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Limits")]
pub(crate) struct RawLimits {
    /// Largest request body accepted; larger bodies answer 413.
    pub max_body: ByteSize,
    /// Time allowed for the upstream to answer (connect and response head); then 504.
    pub request_timeout: HumanDuration,
    /// Time allowed for a client to send the request head, TLS handshake included.
    pub header_timeout: HumanDuration,
    /// Largest request head (request line and headers) accepted; larger heads answer 431.
    /// At most 1MiB.
    pub max_header_bytes: ByteSize,
    /// How long a shutdown (SIGTERM) waits for in-flight requests before exiting.
    pub drain_timeout: HumanDuration,
    /// Largest upstream response read whole for an owner or field check; a larger (or
    /// non-JSON) response on such a route fails closed with 502.
    pub max_inspect_body: ByteSize,
    /// Deepest nesting of arrays and objects accepted in a validated JSON body (400
    /// beyond), checked before parsing; at most 127, the JSON parser's own limit.
    pub max_json_depth: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        let secs = |s| HumanDuration(std::time::Duration::from_secs(s));
        RawLimits {
            max_body: ByteSize(1 << 20),
            request_timeout: secs(30),
            header_timeout: secs(10),
            max_header_bytes: ByteSize(16 << 10),
            drain_timeout: secs(10),
            max_inspect_body: ByteSize(1 << 20),
            max_json_depth: 64,
        }
    }
}

/// A service requests are forwarded to.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Upstream")]
pub(crate) struct RawUpstream {
    /// Unique name that routes refer to: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// `http://` or `https://` URL with a host. A path is a prefix put before the request
    /// path (`http://10.0.0.5:3000/v1`); no query, fragment or credentials.
    pub url: String,
    /// Overrides `limits.request_timeout` for this upstream.
    pub timeout: Option<HumanDuration>,
    /// CA certificate (PEM) this upstream's certificate must chain to, relative to this
    /// file's directory; it replaces the public roots for this upstream. Only for
    /// `https://` URLs.
    pub ca: Option<String>,
}

/// A request palisade accepts and the upstream it goes to.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Route")]
pub(crate) struct RawRoute {
    /// Unique name, used in logs and metrics: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Path pattern, starting with `/`: `/api/orders/{id}` binds a segment, `/static/{*rest}`
    /// the rest of the path. Matched against the normalized request path.
    pub path: String,
    /// Allowed methods, e.g. `["GET", "PUT"]`; at least one, no duplicates. `GET` implies
    /// `HEAD`. Another method on a matching path answers 405.
    pub methods: Vec<String>,
    /// Name of the `[[upstream]]` requests are forwarded to.
    pub upstream: String,
    /// Host name (no scheme, no port) this route is limited to, compared case-insensitively.
    /// Absent: any host.
    pub host: Option<String>,
    /// `public`, `any` (an API key or a JWT), `jwt` or `api_key`. Routes are private unless
    /// marked public.
    #[serde(default)]
    pub auth: RawRouteAuth,
    /// Pass the client's `Authorization` / `X-Api-Key` headers to the upstream. Off by
    /// default: the upstream gets the verified identity in `X-Palisade-*` instead.
    #[serde(default)]
    pub forward_credentials: bool,
    /// The caller needs at least one of these roles (403 otherwise). Empty: any caller.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The caller needs every one of these scopes (403 otherwise).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Object-level authorization (BOLA/IDOR): the caller must own the object. A caller
    /// who does not gets 404, exactly like a missing object.
    pub owner: Option<RawOwner>,
    /// JSON fields removed from responses (JSON pointers; `*` matches every array item or
    /// member), e.g. `{ deny = ["/passwordHash", "/items/*/internalNote"] }`.
    pub response_fields: Option<RawFieldRule>,
    /// JSON fields a request body may not set (400), e.g. `{ deny = ["/role", "/isAdmin"] }`:
    /// mass assignment stopped even without a schema.
    pub request_fields: Option<RawFieldRule>,
    /// This route's rate limit: one policy or a list (all must pass), replacing
    /// `[rate_limit] default` here, e.g. `{ limit = 5, window = "15m", per = "ip" }`.
    pub rate_limit: Option<RawPolicies>,
    /// Marks a login route for `[rate_limit] auth_failures`, e.g.
    /// `{ account = "/username" }`.
    pub login: Option<RawLogin>,
    /// JSON Schemas (draft 2020-12, or draft 7 by `$schema`) requests must match (400
    /// otherwise), files relative to this file, e.g. `{ body = "schemas/order.json" }`.
    pub validate: Option<RawValidate>,
    /// Unknown members are refused: object schemas that list `properties` and say nothing
    /// about others get `additionalProperties: false`. `false` keeps them open.
    #[serde(default = "default_true")]
    pub strict: bool,
}

fn default_true() -> bool {
    true
}

/// The schemas of one route's requests.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Validate")]
pub(crate) struct RawValidate {
    /// Schema of the JSON body. A body is then required on POST, PUT and PATCH, and must be
    /// `application/json` (or `+json`): 415 otherwise.
    pub body: Option<String>,
    /// Schema of the query as one object (`?limit=5` is `{"limit": 5}`: values are read as
    /// the property's `type` says; a repeated parameter is an array, and only allowed when
    /// the property is one).
    pub query: Option<String>,
    /// Schema of the headers it names, as one object (names compared case-insensitively;
    /// headers it does not name are not checked).
    pub headers: Option<String>,
}

/// A list of JSON pointers.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FieldRule")]
pub(crate) struct RawFieldRule {
    pub deny: Vec<String>,
}

/// Who owns the object a request touches.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Owner")]
pub(crate) struct RawOwner {
    /// A path parameter that must equal the caller's claim (`/users/{user_id}/…`).
    /// Exactly one of `param` and `field`.
    pub param: Option<String>,
    /// A JSON pointer to the owner in the upstream's object (`/ownerId`). GETs are checked
    /// on the response; writes are checked first with a GET of the object.
    pub field: Option<String>,
    /// The caller's claim the owner must equal: `sub` (the subject, for keys and tokens) or
    /// another JWT claim such as `tenant_id`.
    #[serde(default = "default_owner_claim")]
    pub claim: String,
    /// Roles that skip the check (logged when they do).
    #[serde(default)]
    pub bypass_roles: Vec<String>,
    /// For list responses: a JSON pointer to the array (`/items`; `""` for a root array).
    pub collection: Option<String>,
    /// `filter` (default) removes items the caller does not own; `deny` refuses the response.
    #[serde(default)]
    pub collection_mode: RawCollectionMode,
    /// On a POST to this route, the body's owner `field` must equal the caller's claim
    /// (`enforce`, 403 otherwise) or is set to it (`set`).
    pub on_create: Option<RawOnCreate>,
    /// `enforce` (default) or `report`: log would-be denials as `owner_violation` events
    /// and let the request through, to roll a rule out safely.
    #[serde(default)]
    pub mode: RawOwnerMode,
    /// The object's path for action routes (`/api/orders/{id}` for `/api/orders/{id}/cancel`);
    /// the preflight GET goes there. Default: the route's own path.
    pub object: Option<String>,
}

fn default_owner_claim() -> String {
    "sub".to_owned()
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawCollectionMode {
    #[default]
    Filter,
    Deny,
}

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawOnCreate {
    Enforce,
    Set,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawOwnerMode {
    #[default]
    Enforce,
    Report,
}

/// Where alerts go, and the built-in rules.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Alerts")]
pub(crate) struct RawAlerts {
    /// URL each fired alert is POSTed to as JSON (https, or http to a loopback host).
    /// A secret, as such URLs carry a token: write it as a reference, e.g.
    /// `${env:PALISADE_ALERT_WEBHOOK}`. Absent: alerts are only logged.
    pub webhook: Option<String>,
    /// Apply the built-in rules `auth_failed_spike`, `rate_limited_spike` and
    /// `upstream_error_spike` (see docs/logging.md); an `[[alert]]` of the same name replaces one.
    pub builtin: bool,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            webhook: None,
            builtin: true,
        }
    }
}

/// `threshold` events within `window` fire the alert, then it rests for `cooldown`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Alert")]
pub(crate) struct RawAlert {
    /// Unique name, used in logs, metrics and the payload; a built-in's name replaces it.
    /// Default: `<event>_spike` (`<event>_<route>_<reason>_spike` with filters).
    pub name: Option<String>,
    /// The security event counted: `auth_failed`, `forbidden`, `owner_violation`,
    /// `owner_bypass`, `rate_limited`, `invalid_request`, `invalid_response`,
    /// `upstream_error`, `config_reloaded`, `config_reload_failed` or `key_revoked`.
    pub event: String,
    /// Count only this route's events (a route name).
    pub route: Option<String>,
    /// Count only events with this `reason` (`bad_signature`, `timeout`, …).
    pub reason: Option<String>,
    /// Events within `window` that fire the alert: 1 to 100000.
    pub threshold: u32,
    /// The sliding window, 1s to 1d, e.g. `5m`.
    pub window: HumanDuration,
    /// Least time between two firings of this rule, 1s to 7d. Default: `window`.
    pub cooldown: Option<HumanDuration>,
    /// This rule's webhook instead of `[alerts] webhook`; a secret reference like it.
    pub webhook: Option<String>,
}

/// OpenTelemetry traces, exported in the background over OTLP/HTTP (JSON encoding).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Telemetry")]
pub(crate) struct RawTelemetry {
    /// The collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; spans are POSTed
    /// to its `/v1/traces` (a URL already ending in `/v1/traces` is used as it is). https,
    /// or http only to a loopback host. A secret reference if it carries credentials
    /// (`user:password@`). Absent: no traces. Setting it in a palisade built without the
    /// `otel` feature fails the load.
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export (e.g. `authorization`); each value is a secret, so a
    /// reference like `${env:OTLP_TOKEN}`.
    pub otlp_headers: std::collections::BTreeMap<String, String>,
    /// The `service.name` resource attribute of every span.
    pub service_name: String,
    /// Share of requests traced, 0.0 to 1.0 (decided at random per request).
    pub sample_ratio: f64,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            otlp_headers: Default::default(),
            service_name: "palisade".to_owned(),
            sample_ratio: 1.0,
        }
    }
}
