//! The validated configuration: what the rest of the gateway reads.
//!
//! Values here are already checked, resolved (`${env:…}`, `${file:…}`), typed and
//! defaulted. Nothing outside `config` sees the raw TOML structs; nothing inside the
//! gateway re-validates these values. A `Config` is immutable: a reload builds a new one.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::locate::KeyIndex;

/// One loaded, validated config file.
#[derive(Debug)]
pub struct Config {
    /// The file this config was read from (used in error messages and for reloads).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub limits: LimitsConfig,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    /// `[store]`, when API keys are in use.
    pub store: Option<StoreConfig>,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    /// Keys of secrets written literally, accepted only under `allow_literal_secrets`.
    pub literal_secrets: Vec<String>,
    /// Where log lines go (taken at start only).
    pub log: LogOutput,
    /// The effective alert rules: the built-ins (unless turned off) and `[[alert]]`s.
    pub alerts: Vec<AlertRule>,
    /// `[telemetry]`, when `otlp_endpoint` is set (only possible with the `otel` feature).
    pub telemetry: Option<TelemetryConfig>,
    /// Maps key paths such as `route[2].path` to lines, so that errors found after
    /// validation (for example a route conflict found while building the router) still
    /// name the file, the line and the key.
    pub(crate) keys: KeyIndex,
    /// The `--env-file` this config's references were resolved with (read again on reload).
    pub env_file: Option<PathBuf>,
}

impl Config {
    /// An error about `key` (a path such as `route[1].path`), located in the source file.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.source, self.keys.line_of(key), key, message)
    }
}

#[derive(Debug)]
pub struct ServerConfig {
    /// Plain-HTTP listener. With `tls` configured it only redirects (308) to https.
    pub http: Option<SocketAddr>,
    /// HTTPS listener; present exactly when `tls` is.
    pub https: Option<SocketAddr>,
    /// Admin listener (/healthz, /readyz, /metrics, /reload). Absent: no admin listener.
    pub admin: Option<SocketAddr>,
    /// Bearer token for the admin API's write endpoints. Required when `admin` is not loopback.
    pub admin_token: Option<SecretString>,
    pub tls: Option<TlsConfig>,
    /// Peers whose `X-Forwarded-*` headers are trusted and extended rather than replaced.
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub source: TlsSource,
    /// The `Strict-Transport-Security` value sent on every https response.
    pub hsts: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, paths already resolved against the config file's directory.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate generated at start for development (`check` flags it).
    SelfSigned,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes (413 above it). Default 1 MiB.
    pub max_body: u64,
    /// Time allowed for the upstream to answer (connect + response head). Default 30 s.
    pub request_timeout: Duration,
    /// Time allowed for a client to send the request head (and the TLS handshake). Default 10 s.
    pub header_timeout: Duration,
    /// Largest request head (request line + headers) accepted, in bytes (431 above it). Default 16 KiB.
    pub max_header_bytes: usize,
    /// How long SIGTERM waits for in-flight requests before exiting. Default 10 s.
    pub drain_timeout: Duration,
    /// Largest upstream response read whole for owner and field checks. Default 1 MiB.
    pub max_inspect_body: u64,
    /// Deepest JSON nesting accepted in a validated body. Default 64.
    pub max_json_depth: usize,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// `http://` or `https://` URL; its path (if any) is a prefix put before the canonical path.
    pub url: http::Uri,
    /// Overrides `limits.request_timeout` for this upstream.
    pub timeout: Option<Duration>,
    /// Extra CA certificate (PEM) trusted for an https upstream, resolved against the config dir.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// matchit syntax: `/api/orders/{id}`, `/static/{*rest}`.
    pub path: String,
    /// Allowed methods, never empty. `GET` implies `HEAD`.
    pub methods: Vec<http::Method>,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    /// Lower-case host name (no port) this route is limited to; `None` matches any host.
    pub host: Option<String>,
    pub auth: RouteAuth,
    /// Pass the client's credentials (`Authorization`, `X-Api-Key`) upstream.
    pub forward_credentials: bool,
    /// Any one of these roles is needed; empty: none.
    pub roles: Vec<String>,
    /// All of these scopes are needed.
    pub scopes: Vec<String>,
    pub owner: Option<OwnerRule>,
    /// JSON pointers (with `*`) removed from JSON responses.
    pub response_deny: Vec<String>,
    /// JSON pointers (with `*`) a request body may not set.
    pub request_deny: Vec<String>,
    /// This route's own policies; empty: `[rate_limit] default` applies.
    pub rate_limit: Vec<Policy>,
    /// A login route for `[rate_limit] auth_failures`.
    pub login: Option<LoginRule>,
    /// What requests (and responses) of this route must look like.
    pub validation: Option<std::sync::Arc<RouteValidation>>,
    /// `strict = false`: unknown members stay open in this route's schemas.
    pub strict: bool,
}

/// The schemas of one route, as loaded (compiled when the pipeline is built).
#[derive(Debug, Clone, Default)]
pub struct RouteValidation {
    /// Where the schemas came from, for errors: a file or a spec pointer.
    pub source: String,
    /// The document local `$ref`s resolve in (an OpenAPI spec), if any.
    pub document: Option<std::sync::Arc<serde_json::Value>>,
    /// Individual parameters (OpenAPI).
    pub params: Vec<super::openapi::Parameter>,
    /// The query as one object (`validate.query`).
    pub query: Option<serde_json::Value>,
    /// The headers as one object (`validate.headers`).
    pub headers: Option<serde_json::Value>,
    pub body: Option<BodySpec>,
    /// Per status (`200`, `2XX`, `default`): media type → schema.
    pub responses: Vec<(String, MediaSchemas)>,
    /// Whether responses are checked, and what a mismatch does.
    pub response_mode: ResponseMode,
    pub strict: bool,
}

/// `[openapi] validate_responses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    #[default]
    Off,
    /// Log an `invalid_response` event; the response passes.
    Log,
    /// Log it and answer 502 instead.
    Enforce,
}

/// `[rate_limit]`.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub default: Vec<Policy>,
    /// Send `RateLimit`/`RateLimit-Policy` on every response, not only on 429s.
    pub headers_always: bool,
    pub max_keys: usize,
    pub store: RateStoreKind,
    pub on_store_error: OnStoreError,
    pub store_timeout: Duration,
    pub auth_failures: Option<AuthFailures>,
}

/// Where rate-limit state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateStoreKind {
    Memory,
    /// A `redis://` URL (it may carry a password: never printed).
    Redis(SecretUrl),
}

/// What a request meets while the shared store is failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Count in this instance's memory (each instance enforces the limit on its own).
    Local,
    /// 503 with `Retry-After`.
    Deny,
    /// Admit without counting.
    Allow,
}

impl OnStoreError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Local => "local",
            OnStoreError::Deny => "deny",
            OnStoreError::Allow => "allow",
        }
    }
}

/// `[rate_limit] auth_failures`: the lockout after repeated failed authentication.
#[derive(Debug, Clone)]
pub struct AuthFailures {
    pub limit: u32,
    pub window: Duration,
    pub per_ip: bool,
    pub per_account: bool,
}

/// A login route: where the account name is in the request body.
#[derive(Debug, Clone)]
pub struct LoginRule {
    /// A JSON pointer (or `/field` of a form body).
    pub account: String,
}

/// One rate-limit policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique name, shown in headers, logs and metrics.
    pub name: String,
    pub limit: u32,
    pub window: Duration,
    pub burst: u32,
    pub per: PerKey,
}

/// What a policy counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerKey {
    Ip,
    /// The API key id or subject; the ip when anonymous.
    Client,
    Subject,
    Key,
    /// Every caller of the route together.
    Route,
    Header(http::HeaderName),
    /// A field of the request body (JSON pointer), e.g. the account of a login.
    Body(String),
}

impl PerKey {
    /// Whether the key is known before authentication (and so can stop floods cheaply).
    pub fn before_auth(&self) -> bool {
        matches!(self, PerKey::Ip | PerKey::Route | PerKey::Header(_))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PerKey::Ip => "ip",
            PerKey::Client => "client",
            PerKey::Subject => "subject",
            PerKey::Key => "key",
            PerKey::Route => "route",
            PerKey::Header(_) => "header",
            PerKey::Body(_) => "body",
        }
    }
}

/// Object-level authorization for one route.
#[derive(Debug, Clone)]
pub struct OwnerRule {
    pub source: OwnerSource,
    /// `sub`, or the name of a JWT claim.
    pub claim: String,
    pub bypass_roles: Vec<String>,
    /// JSON pointer to the array of a list response (`""`: the root is the array).
    pub collection: Option<String>,
    pub collection_mode: CollectionMode,
    pub on_create: Option<OnCreate>,
    pub mode: OwnerMode,
    /// matchit pattern of the object's path for preflight GETs; `None`: the route's path.
    pub object: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerSource {
    /// A path parameter's name.
    Param(String),
    /// A JSON pointer into the upstream's object.
    Field(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionMode {
    Filter,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCreate {
    Enforce,
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerMode {
    Enforce,
    Report,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A store URL that may carry a password (`redis://:PASSWORD@…`, `postgres://u:PASSWORD@…`,
/// `?password=…`): `{:?}` and `{}` show it without the user info and with password
/// parameters masked; only [`SecretUrl::expose_secret`] gives the URL to connect with.
/// Not `Serialize`, so it cannot reach JSON by accident either.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The URL itself, credentials included: for the client that connects, nothing else.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// `scheme://***@host/path?sslmode=x&password=***`, the fragment left out; `***` if it
    /// is not a URL. Parsed as the drivers parse it, so a parameter they read as a password
    /// (`pass%77ord`, `pass<TAB>word`) is masked, and shown under its decoded name.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            return "***".to_owned();
        };
        url.set_fragment(None);
        let user_info = !url.username().is_empty() || url.password().is_some();
        if user_info && (url.set_password(None).is_err() || url.set_username("").is_err()) {
            return "***".to_owned();
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(name, value)| {
                    let value = if super::refs::is_password_param(&name) {
                        "***".to_owned()
                    } else {
                        value.into_owned()
                    };
                    (name.into_owned(), value)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        let out = url.to_string();
        let scheme = format!("{}://", url.scheme());
        match out.strip_prefix(&scheme) {
            Some(rest) if user_info => format!("{scheme}***@{rest}"),
            Some(_) => out,
            None => "***".to_owned(),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretUrl({:?})", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `[store]`: where API keys (and later ownership records) live.
#[derive(Debug)]
pub struct StoreConfig {
    /// `sqlite://path.db` (created on first use) or `postgres://…`.
    pub url: SecretUrl,
    /// The server-side secrets mixed into every stored key hash (HMAC-SHA-256), current
    /// first; never empty, no two alike.
    pub key_peppers: Vec<SecretString>,
    /// How long a rotated key stays valid next to its replacement. Default 24 h.
    pub rotation_overlap: Duration,
}

/// `[auth]`: how callers prove who they are.
#[derive(Debug, Default)]
pub struct AuthConfig {
    pub jwt: Option<JwtConfig>,
}

/// `[auth.jwt]`: tokens from one issuer.
#[derive(Debug)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one. Never empty.
    pub audiences: Vec<String>,
    /// The allow-list; never `none`, HS* only with `Secret` keys (and then only HS*).
    pub algorithms: Vec<JwtAlgorithm>,
    pub keys: JwtKeySource,
    /// Claim holding the roles; a dotted path (`realm_access.roles`) is followed. Default `roles`.
    pub roles_claim: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default 30 s.
    pub leeway: Duration,
    /// Longest token accepted, in bytes. Default 8 KiB.
    pub max_token_bytes: usize,
    /// How often the key set is refreshed when its response gave no max-age. Default 10 min.
    pub jwks_refresh: Duration,
    /// Least time between two refreshes caused by unknown `kid`s. Default 30 s.
    pub jwks_cooldown: Duration,
}

/// Where the verification keys come from.
#[derive(Debug)]
pub enum JwtKeySource {
    /// A JWKS document fetched over http(s).
    JwksUrl(http::Uri),
    /// A JWKS document on disk (resolved against the config dir), re-read on reload.
    JwksFile(PathBuf),
    /// An OpenID Connect discovery document whose `jwks_uri` is then fetched.
    Discovery(http::Uri),
    /// Shared secrets for HS256/384/512, current first; never empty, no two alike.
    Secret(Vec<SecretString>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    /// Every algorithm with its JWS name (RFC 7518, RFC 8037), as in a header's `alg`
    /// and in `auth.jwt.algorithms`. `none` is not one.
    const NAMES: [(JwtAlgorithm, &'static str); 12] = [
        (JwtAlgorithm::RS256, "RS256"),
        (JwtAlgorithm::RS384, "RS384"),
        (JwtAlgorithm::RS512, "RS512"),
        (JwtAlgorithm::PS256, "PS256"),
        (JwtAlgorithm::PS384, "PS384"),
        (JwtAlgorithm::PS512, "PS512"),
        (JwtAlgorithm::ES256, "ES256"),
        (JwtAlgorithm::ES384, "ES384"),
        (JwtAlgorithm::EdDSA, "EdDSA"),
        (JwtAlgorithm::HS256, "HS256"),
        (JwtAlgorithm::HS384, "HS384"),
        (JwtAlgorithm::HS512, "HS512"),
    ];

    /// The algorithm a JWS name names (exact, case-sensitive), if we support it.
    pub fn from_name(name: &str) -> Option<JwtAlgorithm> {
        (Self::NAMES.iter())
            .find(|(_, n)| *n == name)
            .map(|(alg, _)| *alg)
    }

    pub fn name(self) -> &'static str {
        (Self::NAMES.iter())
            .find(|(alg, _)| *alg == self)
            .map_or("", |(_, n)| n)
    }

    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

/// What a route demands of its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteAuth {
    /// No credentials needed (login, health, public content).
    Public,
    /// An API key or a JWT (the default: routes are private unless marked public).
    #[default]
    Any,
    /// A JWT only.
    Jwt,
    /// An API key only.
    ApiKey,
}

/// Where and how request spans are exported (`[telemetry]`).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The full URL spans are POSTed to (ends in `/v1/traces`); secret, as it may carry
    /// credentials.
    pub traces_url: SecretString,
    /// Headers sent with every export; values are secrets.
    pub headers: Vec<(http::HeaderName, SecretString)>,
    pub service_name: String,
    /// 0.0 to 1.0.
    pub sample_ratio: f64,
}

impl TelemetryConfig {
    /// Two configs that export to the same place the same way (a reload that keeps them
    /// keeps the running exporter and its queue).
    pub fn same_as(&self, other: &TelemetryConfig) -> bool {
        use secrecy::ExposeSecret as _;
        self.traces_url.expose_secret() == other.traces_url.expose_secret()
            && self.service_name == other.service_name
            && self.sample_ratio == other.sample_ratio
            && self.headers.len() == other.headers.len()
            && self
                .headers
                .iter()
                .zip(&other.headers)
                .all(|((a, x), (b, y))| a == b && x.expose_secret() == y.expose_secret())
    }
}

/// The events counted: the security events of the checklist (others are operational).
pub const SECURITY_EVENTS: [&str; 12] = [
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
    "key_created",
    "key_revoked",
];

/// The built-in rules: (name, event, threshold, window). Cooldown [`BUILTIN_COOLDOWN`].
/// Sized for a busy API: bursts a single confused client produces stay under them.
pub const BUILTIN_RULES: [(&str, &str, u32, Duration); 3] = [
    (
        "auth_failed_spike",
        "auth_failed",
        100,
        Duration::from_secs(300),
    ),
    (
        "rate_limited_spike",
        "rate_limited",
        500,
        Duration::from_secs(300),
    ),
    (
        "upstream_error_spike",
        "upstream_error",
        50,
        Duration::from_secs(300),
    ),
];

/// How long a built-in rule rests after firing.
pub const BUILTIN_COOLDOWN: Duration = Duration::from_secs(900);

/// The built-in rules, all sent to `webhook`.
pub fn builtin_rules(webhook: Option<SecretString>) -> Vec<AlertRule> {
    BUILTIN_RULES
        .iter()
        .map(|&(name, event, threshold, window)| AlertRule {
            name: name.to_owned(),
            event: event.to_owned(),
            route: None,
            reason: None,
            threshold,
            window,
            cooldown: BUILTIN_COOLDOWN,
            webhook: webhook.clone(),
            builtin: true,
        })
        .collect()
}

/// One alert rule, built-in or from `[[alert]]`.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: String,
    /// A security event name (never `alert`: alerts do not count themselves).
    pub event: String,
    /// Only events of this route.
    pub route: Option<String>,
    /// Only events with this `reason`.
    pub reason: Option<String>,
    /// Events inside `window` that fire the rule; at least 1.
    pub threshold: u32,
    pub window: Duration,
    /// Least time between two firings.
    pub cooldown: Duration,
    /// Where the payload is POSTed (the rule's own, else `[alerts] webhook`); none: logged only.
    pub webhook: Option<SecretString>,
    /// One of the built-in rules (unchanged by the config).
    pub builtin: bool,
}

impl AlertRule {
    /// Same counting (so a reload can keep the rule's window and cooldown).
    pub fn same_counting(&self, other: &AlertRule) -> bool {
        self.name == other.name
            && self.event == other.event
            && self.route == other.route
            && self.reason == other.reason
            && self.threshold == other.threshold
            && self.window == other.window
            && self.cooldown == other.cooldown
    }
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    /// `path`, renamed to `path.1` (and `path.1` to `path.2`, …, up to `keep`) once it
    /// would pass `max_bytes`.
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
}

/// Media types (`application/json`, `application/*`, …) and their schemas, if any.
pub type MediaSchemas = Vec<(String, Option<serde_json::Value>)>;

/// The request body of an operation.
#[derive(Debug, Clone)]
pub struct BodySpec {
    /// A body must be sent: always, or with `writes_only` on POST, PUT and PATCH only.
    pub required: bool,
    pub writes_only: bool,
    /// Accepted media types and their schemas.
    pub content: MediaSchemas,
}
