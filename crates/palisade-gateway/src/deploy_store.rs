//! Where deployment state lives: in this process (one gateway) or in Redis, shared by
//! every replica (`redis_url`).
//!
//! The store holds, per model, the rollout state (by backend name, with a generation that
//! every change increments), the canary's request statistics for each generation (each
//! replica adds its own counts), and a short lease that serializes changes. A change takes
//! the lease, checks the generation it started from (compare-and-set) and writes the next
//! one; replicas adopt any newer generation they read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_auth::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::deploy::CanarySpec;
use crate::redis_conn::RedisConn;

/// Latency buckets: bucket 0 holds everything under [`LOW_MS`]; bucket `i ≥ 1` holds
/// `[LOW_MS·GROWTH^(i-1), LOW_MS·GROWTH^i)`. A p99 read from them is at most 10 % high.
const LOW_MS: f64 = 0.01;
const GROWTH: f64 = 1.1;
/// 0.01 ms · 1.1^199 is about 29 minutes; slower requests share the last bucket.
const BUCKETS: u16 = 200;

fn bucket(ms: f64) -> u16 {
    if ms.is_nan() || ms < LOW_MS {
        return 0;
    }
    let i = ((ms / LOW_MS).ln() / GROWTH.ln()).floor() + 1.0;
    if i >= f64::from(BUCKETS - 1) {
        BUCKETS - 1
    } else {
        i as u16
    }
}

fn upper_ms(i: u16) -> f64 {
    LOW_MS * GROWTH.powi(i32::from(i))
}

/// What a backend's requests did in one generation: counts and a latency histogram,
/// which add up across replicas.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub latency: BTreeMap<u16, u64>,
}

impl Stats {
    pub fn record(&mut self, ok: bool, latency: Duration) {
        self.requests += 1;
        if !ok {
            self.errors += 1;
        }
        *self.latency.entry(bucket(latency.as_secs_f64() * 1000.0)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Stats) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (b, n) in &other.latency {
            *self.latency.entry(*b).or_default() += n;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    /// The 99th percentile latency (the upper bound of its bucket), 0 with no requests.
    pub fn p99_ms(&self) -> f64 {
        let n: u64 = self.latency.values().sum();
        if n == 0 {
            return 0.0;
        }
        let rank = (n as f64 * 0.99).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in &self.latency {
            seen += c;
            if seen >= rank {
                return upper_ms(*b);
            }
        }
        upper_ms(BUCKETS - 1)
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// A model's rollout state as stored: backends by name, so that replicas with the same
/// configuration agree whatever order they list them in.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Shared {
    pub generation: u64,
    pub stable: String,
    pub previous: Option<String>,
    pub canary: Option<SharedCanary>,
    pub shadow: Option<String>,
    pub status: Status,
    pub last_change: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct SharedCanary {
    pub backend: String,
    pub spec: CanarySpec,
    /// Index into `spec.steps`.
    pub step: usize,
    /// The generation the canary started at: one canary, however many steps.
    pub id: u64,
    /// When the current step began (Unix milliseconds, so that any replica can judge it).
    pub step_started_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Stable,
    Canary,
    RolledBack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stable => "stable",
            Status::Canary => "canary",
            Status::RolledBack => "rolled-back",
        }
    }
}

/// Proof of holding a model's change lease.
#[derive(Debug)]
pub struct Lease {
    model: String,
    token: u64,
}

#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a lease lasts if its holder never releases it (it crashed).
pub const LEASE_TTL: Duration = Duration::from_secs(10);

pub trait DeployStore: Send + Sync {
    /// `redis` or `memory`.
    fn name(&self) -> &'static str;
    /// Whether other processes share this store (then replicas poll it).
    fn shared(&self) -> bool;
    /// The stored state of each model (`None`: never changed).
    fn load<'a>(&'a self, models: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Shared>>, StoreError>>;
    /// Writes `state` if the stored generation is still `expected`, or nothing is stored
    /// (a fresh or flushed store must not wedge replicas that remember a later generation).
    fn save<'a>(&'a self, model: &'a str, expected: u64, state: &'a Shared) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Adds a replica's counts for one generation of a model's canary.
    fn add<'a>(&'a self, model: &'a str, generation: u64, stats: &'a Stats) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Everyone's counts for one generation.
    fn stats<'a>(&'a self, model: &'a str, generation: u64) -> BoxFuture<'a, Result<Stats, StoreError>>;
    /// Takes the model's change lease if nobody holds it.
    fn lease<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<Option<Lease>, StoreError>>;
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>>;
}

fn token() -> u64 {
    fastrand::u64(1..)
}

/// One process's state.
#[derive(Default)]
pub struct MemoryDeployStore {
    states: parking_lot::Mutex<HashMap<String, Shared>>,
    stats: parking_lot::Mutex<HashMap<(String, u64), Stats>>,
    leases: parking_lot::Mutex<HashMap<String, (u64, Instant)>>,
}

impl DeployStore for MemoryDeployStore {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn shared(&self) -> bool {
        false
    }
    fn load<'a>(&'a self, models: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Shared>>, StoreError>> {
        let states = self.states.lock();
        let out = models.iter().map(|m| states.get(m).cloned()).collect();
        Box::pin(async move { Ok(out) })
    }
    fn save<'a>(&'a self, model: &'a str, expected: u64, state: &'a Shared) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut states = self.states.lock();
        let ok = states.get(model).is_none_or(|s| s.generation == expected);
        if ok {
            states.insert(model.to_owned(), state.clone());
            // Older generations' counts are never read again.
            self.stats
                .lock()
                .retain(|(m, g), _| m != model || *g >= state.generation);
        }
        Box::pin(async move { Ok(ok) })
    }
    fn add<'a>(&'a self, model: &'a str, generation: u64, stats: &'a Stats) -> BoxFuture<'a, Result<(), StoreError>> {
        self.stats
            .lock()
            .entry((model.to_owned(), generation))
            .or_default()
            .merge(stats);
        Box::pin(async move { Ok(()) })
    }
    fn stats<'a>(&'a self, model: &'a str, generation: u64) -> BoxFuture<'a, Result<Stats, StoreError>> {
        let s = self
            .stats
            .lock()
            .get(&(model.to_owned(), generation))
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(s) })
    }
    fn lease<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        let mut leases = self.leases.lock();
        let now = Instant::now();
        let free = leases.get(model).is_none_or(|(_, until)| *until <= now);
        let out = free.then(|| {
            let t = token();
            leases.insert(model.to_owned(), (t, now + LEASE_TTL));
            Lease {
                model: model.to_owned(),
                token: t,
            }
        });
        Box::pin(async move { Ok(out) })
    }
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut leases = self.leases.lock();
        if leases.get(&lease.model).is_some_and(|(t, _)| *t == lease.token) {
            leases.remove(&lease.model);
        }
        Box::pin(async move { Ok(()) })
    }
}

/// Compare-and-set of a model's state hash (`g`: generation, `s`: the state as JSON). An
/// absent hash (a fresh or flushed Redis) accepts any writer.
const SAVE: &str = r"
local g = redis.call('HGET', KEYS[1], 'g')
if g and tonumber(g) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'g', ARGV[2], 's', ARGV[3])
return 1
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// How long a generation's counts stay in Redis.
const STATS_TTL_MS: u64 = 24 * 3600 * 1000;

/// State shared by every replica that names the same Redis and prefix.
pub struct RedisDeployStore {
    conn: Arc<RedisConn>,
    prefix: String,
    save: redis::Script,
    release: redis::Script,
}

impl RedisDeployStore {
    /// Keys start with `{prefix}:deploy:`.
    pub fn new(conn: Arc<RedisConn>, prefix: &str) -> Self {
        RedisDeployStore {
            conn,
            prefix: format!("{prefix}:deploy"),
            save: redis::Script::new(SAVE),
            release: redis::Script::new(RELEASE),
        }
    }

    fn state_key(&self, model: &str) -> String {
        format!("{}:{{{model}}}:state", self.prefix)
    }
    fn stats_key(&self, model: &str, generation: u64) -> String {
        format!("{}:{{{model}}}:stats:{generation}", self.prefix)
    }
    fn lease_key(&self, model: &str) -> String {
        format!("{}:{{{model}}}:lease", self.prefix)
    }
}

fn err(e: String) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl DeployStore for RedisDeployStore {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn shared(&self) -> bool {
        true
    }
    fn load<'a>(&'a self, models: &'a [String]) -> BoxFuture<'a, Result<Vec<Option<Shared>>, StoreError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for m in models {
                pipe.hget(self.state_key(m), "s");
            }
            let raw: Vec<Option<String>> = self
                .conn
                .run(|mut c| async move { pipe.query_async(&mut c).await })
                .await
                .map_err(err)?;
            raw.into_iter()
                .zip(models)
                .map(|(r, m)| match r {
                    None => Ok(None),
                    Some(s) => serde_json::from_str(&s)
                        .map(Some)
                        .map_err(|e| StoreError(format!("stored state of `{m}` is unreadable: {e}"))),
                })
                .collect()
        })
    }
    fn save<'a>(&'a self, model: &'a str, expected: u64, state: &'a Shared) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(state).map_err(|e| StoreError(e.to_string()))?;
            let mut inv = self.save.prepare_invoke();
            inv.key(self.state_key(model))
                .arg(expected)
                .arg(state.generation)
                .arg(json);
            let n: i64 = self
                .conn
                .run(|mut c| async move { inv.invoke_async(&mut c).await })
                .await
                .map_err(err)?;
            Ok(n == 1)
        })
    }
    fn add<'a>(&'a self, model: &'a str, generation: u64, stats: &'a Stats) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = self.stats_key(model, generation);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .hincr(&key, "requests", stats.requests)
                .ignore()
                .hincr(&key, "errors", stats.errors)
                .ignore();
            for (b, n) in &stats.latency {
                pipe.hincr(&key, format!("b{b}"), *n).ignore();
            }
            pipe.pexpire(&key, STATS_TTL_MS as i64).ignore();
            self.conn
                .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
                .map_err(err)
        })
    }
    fn stats<'a>(&'a self, model: &'a str, generation: u64) -> BoxFuture<'a, Result<Stats, StoreError>> {
        Box::pin(async move {
            let key = self.stats_key(model, generation);
            let raw: HashMap<String, u64> = self
                .conn
                .run(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
                .await
                .map_err(err)?;
            let mut s = Stats::default();
            for (k, v) in raw {
                match k.as_str() {
                    "requests" => s.requests = v,
                    "errors" => s.errors = v,
                    _ => {
                        if let Some(b) = k.strip_prefix('b').and_then(|b| b.parse::<u16>().ok()) {
                            s.latency.insert(b.min(BUCKETS - 1), v);
                        }
                    }
                }
            }
            Ok(s)
        })
    }
    fn lease<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<Option<Lease>, StoreError>> {
        Box::pin(async move {
            let t = token();
            let key = self.lease_key(model);
            let ok: Option<String> = self
                .conn
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(t)
                        .arg("NX")
                        .arg("PX")
                        .arg(LEASE_TTL.as_millis() as u64)
                        .query_async(&mut c)
                        .await
                })
                .await
                .map_err(err)?;
            Ok(ok.map(|_| Lease {
                model: model.to_owned(),
                token: t,
            }))
        })
    }
    fn release(&self, lease: Lease) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inv = self.release.prepare_invoke();
            inv.key(self.lease_key(&lease.model)).arg(lease.token);
            self.conn
                .run(|mut c| async move { inv.invoke_async::<i64>(&mut c).await })
                .await
                .map(|_| ())
                .map_err(err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_and_p99_is_within_ten_percent() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(1e12), BUCKETS - 1);
        for ms in [0.011, 0.5, 1.0, 3.7, 250.0, 9_999.0] {
            let b = bucket(ms);
            assert!(
                upper_ms(b - 1) <= ms * 1.000_001 && ms < upper_ms(b),
                "{ms} in bucket {b}"
            );
        }
        let mut s = Stats::default();
        for i in 1..=1000u64 {
            s.record(i % 10 != 0, Duration::from_micros(i * 100));
        }
        // The exact p99 of 0.1..100 ms in 0.1 ms steps is 99.0 ms.
        let p = s.p99_ms();
        assert!((99.0..=99.0 * 1.1).contains(&p), "{p}");
        assert_eq!((s.requests, s.errors), (1000, 100));
        assert!((s.error_rate() - 0.1).abs() < 1e-12);
        let mut twice = s.clone();
        twice.merge(&s);
        assert_eq!(twice.requests, 2000);
        assert_eq!(twice.p99_ms(), p);
        assert_eq!(Stats::default().p99_ms(), 0.0);
    }

    #[tokio::test]
    async fn memory_store_compares_generations_and_leases_once() {
        let store = MemoryDeployStore::default();
        let state = |g| Shared {
            generation: g,
            stable: "blue".into(),
            previous: None,
            canary: None,
            shadow: None,
            status: Status::Stable,
            last_change: String::new(),
        };
        assert!(store.save("m", 0, &state(1)).await.unwrap());
        assert!(
            !store.save("m", 0, &state(2)).await.unwrap(),
            "a stale generation must not win"
        );
        assert!(store.save("m", 1, &state(2)).await.unwrap());
        assert_eq!(
            store.load(&["m".into(), "x".into()]).await.unwrap(),
            vec![Some(state(2)), None]
        );
        let a = store.lease("m").await.unwrap().unwrap();
        assert!(store.lease("m").await.unwrap().is_none());
        assert!(store.lease("other").await.unwrap().is_some());
        store.release(a).await.unwrap();
        assert!(store.lease("m").await.unwrap().is_some());
    }
}
