//! The gateway as it runs: the pipeline requests are served with right now, and what
//! outlives a reload (the key store, the rate-limit stores, the metrics). Start-up and
//! reload build a pipeline through one sequence ([`Stores::build`]); a reload swaps the
//! new pipeline in whole, and a config that fails to load or build changes nothing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use palisade_store::{KeyPeppers, KeyService};

use crate::config::{Config, ConfigError, RateStoreKind};
use crate::observe::Metrics;
use crate::observe::security::{Scope, security_event};
use crate::pipeline::Pipeline;
use crate::ratelimit::memory::MemoryStore;
use crate::ratelimit::redis::RedisStore;
use crate::ratelimit::store::RateStore;

/// The running gateway, shared by every listener and the admin API.
pub(crate) struct Running {
    pipeline: ArcSwap<Pipeline>,
    stores: Stores,
    pub metrics: Arc<Metrics>,
    config_path: PathBuf,
    /// `--env-file`, read again on every reload.
    env_file: Option<PathBuf>,
    reload_lock: tokio::sync::Mutex<()>,
    /// The addresses bound at start.
    pub bound: Bound,
}

/// The addresses actually bound (a config may ask for port 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bound {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

impl Running {
    pub(crate) fn new(
        pipeline: Pipeline,
        stores: Stores,
        metrics: Arc<Metrics>,
        bound: Bound,
    ) -> Self {
        Running {
            config_path: pipeline.config.source.clone(),
            env_file: pipeline.config.env_file.clone(),
            pipeline: ArcSwap::from_pointee(pipeline),
            stores,
            metrics,
            reload_lock: tokio::sync::Mutex::new(()),
            bound,
        }
    }

    /// The pipeline requests are served with right now.
    pub(crate) fn current(&self) -> Arc<Pipeline> {
        self.pipeline.load_full()
    }

    /// Port of the bound https listener, for redirects.
    pub(crate) fn https_port(&self) -> Option<u16> {
        self.bound.https.map(|a| a.port())
    }

    /// Loads the config file again and swaps the pipeline. The running pipeline stays
    /// when the new config fails to load or build.
    pub(crate) async fn reload(&self) -> Result<(), ConfigError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let built = async {
            let config = Config::load_with_env_file(&self.config_path, self.env_file.as_deref())?;
            self.stores.build(config, &self.metrics).await
        }
        .await;
        match built {
            Ok(pipeline) => {
                warn_about_listener_changes(&pipeline.config, self.bound);
                install_process_wide(&pipeline.config);
                self.pipeline.store(Arc::new(pipeline));
                self.metrics.record_reload(true);
                security_event!(info, Scope::outside(), "config_reloaded", "applied", file = %self.config_path.display());
                Ok(())
            }
            Err(error) => {
                self.metrics.record_reload(false);
                security_event!(error, Scope::outside(), "config_reload_failed", "invalid", error = %error, message = "the running config stays in force");
                Err(error)
            }
        }
    }
}

/// What a config sets for the whole process rather than for one pipeline: the alert rules
/// and, with the `otel` feature, the trace exporter.
pub(crate) fn install_process_wide(config: &Config) {
    crate::observe::alerts::install(&config.alerts);
    #[cfg(feature = "otel")]
    crate::observe::otel::install(config.telemetry.as_ref());
}

/// Listener addresses are bound once; a reload that changes them takes effect at the
/// next restart, and says so.
fn warn_about_listener_changes(config: &Config, bound: Bound) {
    let changed =
        |configured: Option<SocketAddr>, bound: Option<SocketAddr>| match (configured, bound) {
            (Some(c), Some(b)) => c.ip() != b.ip() || (c.port() != 0 && c.port() != b.port()),
            (None, None) => false,
            _ => true,
        };
    if changed(config.server.http, bound.http)
        || changed(config.server.https, bound.https)
        || changed(config.server.admin, bound.admin)
    {
        tracing::warn!(
            event = "listeners_unchanged",
            "listener addresses changed in the config; they apply after a restart"
        );
    }
}

/// The stores a pipeline is built on, kept across reloads: a reload must not reset anyone's
/// quota, and a key store whose `[store]` is unchanged keeps its cache and connections.
pub(crate) struct Stores {
    keys: tokio::sync::Mutex<Option<OpenStore>>,
    rate: RateStores,
}

impl Stores {
    pub(crate) fn new(config: &Config) -> Self {
        Stores {
            keys: tokio::sync::Mutex::new(None),
            rate: RateStores {
                memory: Arc::new(MemoryStore::new(config.rate_limit.max_keys)),
                redis: std::sync::Mutex::new(None),
            },
        }
    }

    /// Builds the pipeline for `config` on these stores: the one sequence of start-up and
    /// reload. The key store changes only when the whole pipeline was built: until the
    /// swap, the running pipeline still uses the one it has (and its revocation listener).
    pub(crate) async fn build(
        &self,
        config: Config,
        metrics: &Arc<Metrics>,
    ) -> Result<Pipeline, ConfigError> {
        let mut open = self.keys.lock().await;
        let next = KeyStoreFor::config(open.as_ref(), &config).await?;
        let keys = match &next {
            KeyStoreFor::None => None,
            KeyStoreFor::Same(_) => open.as_ref().map(|store| store.service.clone()),
            KeyStoreFor::New(store) => Some(store.service.clone()),
        };
        let rate_store = self.rate.for_config(&config, metrics)?;
        // A Redis Cluster is detected here, and a cluster URL it cannot use is refused
        // here, not by every request later.
        rate_store
            .check_supported()
            .await
            .map_err(|message| config.error_at("rate_limit.store", message))?;
        let pipeline = Pipeline::build(config, metrics.clone(), keys, rate_store)?;
        match next {
            KeyStoreFor::None => *open = None,
            // The new peppers apply only with the pipeline they came with: the running
            // pipeline shares this key service.
            KeyStoreFor::Same(peppers) => {
                if let Some(store) = open.as_ref() {
                    store.service.set_peppers(peppers);
                }
            }
            KeyStoreFor::New(store) => *open = Some(store),
        }
        Ok(pipeline)
    }
}

/// The rate-limit stores of the process: the memory store (also the fallback for Redis)
/// for its whole life, the Redis connection for as long as its URL stays the same.
struct RateStores {
    memory: Arc<MemoryStore>,
    redis: std::sync::Mutex<Option<Arc<RedisStore>>>,
}

impl RateStores {
    fn for_config(&self, config: &Config, metrics: &Metrics) -> Result<RateStore, ConfigError> {
        let limits = &config.rate_limit;
        let RateStoreKind::Redis(url) = &limits.store else {
            return Ok(RateStore::memory(self.memory.clone()));
        };
        let mut open = self.redis.lock().unwrap_or_else(|p| p.into_inner());
        let redis = match open.as_ref().filter(|r| r.url() == url.expose_secret()) {
            Some(redis) => redis.clone(),
            None => {
                let redis = RedisStore::connect(url.expose_secret())
                    .map_err(|message| config.error_at("rate_limit.store", message))?;
                *open = Some(redis.clone());
                redis
            }
        };
        Ok(RateStore::redis(
            redis,
            self.memory.clone(),
            limits.on_store_error,
            limits.store_timeout,
            metrics,
        ))
    }
}

/// An open key store and its background task (revocation listener, last-used flusher).
struct OpenStore {
    url: crate::config::SecretUrl,
    overlap: Duration,
    service: KeyService,
    background: tokio::task::JoinHandle<()>,
}

impl Drop for OpenStore {
    fn drop(&mut self) {
        self.background.abort();
    }
}

/// The key store a config asks for, compared with the open one.
enum KeyStoreFor {
    /// No `[store]`.
    None,
    /// The open store, unchanged but for its peppers: a pepper rotation needs no restart
    /// and no reconnection.
    Same(KeyPeppers),
    /// A store opened for this config.
    New(OpenStore),
}

impl KeyStoreFor {
    async fn config(open: Option<&OpenStore>, config: &Config) -> Result<KeyStoreFor, ConfigError> {
        let Some(store) = &config.store else {
            return Ok(KeyStoreFor::None);
        };
        let peppers = KeyPeppers::new(&store.key_peppers)
            .map_err(|e| config.error_at("store.key_pepper", e.to_string()))?;
        if let Some(open) = open
            && open.url == store.url
            && open.overlap == store.rotation_overlap
        {
            return Ok(KeyStoreFor::Same(peppers));
        }
        let service = KeyService::open(store.url.expose_secret(), peppers, store.rotation_overlap)
            .await
            .map_err(|e| config.error_at("store.url", format!("cannot open the key store: {e}")))?;
        let background = service.spawn_background();
        Ok(KeyStoreFor::New(OpenStore {
            url: store.url.clone(),
            overlap: store.rotation_overlap,
            service,
            background,
        }))
    }
}
