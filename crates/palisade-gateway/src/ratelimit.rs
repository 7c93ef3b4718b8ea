//! Rate limits and quotas: token buckets per rule and scope (key, team, model, key and
//! model, global), for requests and for LLM tokens.
//!
//! A bucket holds up to `limit` units and refills at `limit / window` per second. A
//! request is admitted only if every bucket it touches has room; then all of them are
//! charged at once (all or nothing). LLM requests reserve `prompt estimate + max_tokens`
//! before the call and settle the difference with the upstream's reported usage after.
//!
//! Two stores: [`MemoryLimiter`] (one process, the default) and [`RedisLimiter`] (several
//! replicas), where check-and-charge is one Lua script — Redis runs a script atomically,
//! so concurrent replicas can never both spend the last unit (no GET-then-SET race). Time
//! comes from the Redis server's clock (`TIME`), so replicas' clocks do not matter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_auth::{BoxFuture, Principal};
use sha2::{Digest as _, Sha256};

use crate::config::{FailureMode, RateLimitRule, Scope};
use crate::error::{GatewayError, Kind};
use crate::redis_conn::RedisConn;

/// One bucket touched by a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// The store key (bounded length: scope values are hashed).
    pub key: String,
    /// Bucket size.
    pub capacity: f64,
    /// Refill, in units per second.
    pub per_sec: f64,
    /// Units this request takes.
    pub cost: f64,
}

/// The state of each bucket after an acquire, in the order of the charges.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub allowed: bool,
    /// Units left in each bucket (after the charge, when allowed).
    pub remaining: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
#[error("rate-limit store: {0}")]
pub struct LimiterError(pub String);

/// Where buckets live.
pub trait Limiter: Send + Sync {
    /// Checks every bucket and, only if all have room, charges all of them.
    fn acquire<'a>(&'a self, charges: &'a [Charge]) -> BoxFuture<'a, Result<Outcome, LimiterError>>;
    /// Adds `cost` back to each bucket (a negative cost takes more), capped at capacity.
    fn refund<'a>(&'a self, charges: &'a [Charge]) -> BoxFuture<'a, Result<(), LimiterError>>;
    /// `memory` or `redis`.
    fn name(&self) -> &'static str;
}

/// Buckets in this process.
pub struct MemoryLimiter {
    buckets: parking_lot::Mutex<HashMap<String, (f64, Instant)>>,
    max_buckets: usize,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            buckets: parking_lot::Mutex::new(HashMap::new()),
            max_buckets: 100_000,
        }
    }
}

fn refill(level: f64, since: Instant, now: Instant, c: &Charge) -> f64 {
    (level + now.saturating_duration_since(since).as_secs_f64() * c.per_sec).min(c.capacity)
}

impl MemoryLimiter {
    fn acquire_now(&self, charges: &[Charge]) -> Outcome {
        let now = Instant::now();
        let mut map = self.buckets.lock();
        if map.len() >= self.max_buckets {
            // Forget buckets idle long enough to be full again: they hold no information.
            // (A bucket's refill time is at most its window, so this is exact, not lossy.)
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < Duration::from_secs(3600));
        }
        let levels: Vec<f64> = charges
            .iter()
            .map(|c| match map.get(&c.key) {
                Some((level, at)) => refill(*level, *at, now, c),
                None => c.capacity,
            })
            .collect();
        let allowed = charges.iter().zip(&levels).all(|(c, l)| *l >= c.cost);
        let mut remaining = Vec::with_capacity(charges.len());
        for (c, l) in charges.iter().zip(levels) {
            let left = if allowed { l - c.cost } else { l };
            map.insert(c.key.clone(), (left, now));
            remaining.push(left);
        }
        Outcome { allowed, remaining }
    }

    fn refund_now(&self, charges: &[Charge]) {
        let now = Instant::now();
        let mut map = self.buckets.lock();
        for c in charges {
            let level = match map.get(&c.key) {
                Some((level, at)) => refill(*level, *at, now, c),
                None => c.capacity,
            };
            map.insert(c.key.clone(), ((level + c.cost).min(c.capacity), now));
        }
    }
}

impl Limiter for MemoryLimiter {
    fn acquire<'a>(&'a self, charges: &'a [Charge]) -> BoxFuture<'a, Result<Outcome, LimiterError>> {
        Box::pin(async move { Ok(self.acquire_now(charges)) })
    }
    fn refund<'a>(&'a self, charges: &'a [Charge]) -> BoxFuture<'a, Result<(), LimiterError>> {
        Box::pin(async move {
            self.refund_now(charges);
            Ok(())
        })
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}

/// Check-and-charge, atomically. KEYS: the buckets; ARGV: capacity, refill per ms and
/// cost for each key. Returns `{allowed, level1, level2, …}` as strings (Redis would
/// truncate Lua numbers to integers). Buckets are hashes `{v: level, t: ms}` that expire
/// once they would be full again.
const ACQUIRE: &str = r"
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000
local levels = {}
local ok = 1
for i = 1, #KEYS do
  local cap = tonumber(ARGV[3*i-2])
  local rate = tonumber(ARGV[3*i-1])
  local cost = tonumber(ARGV[3*i])
  local v = redis.call('HMGET', KEYS[i], 'v', 't')
  local level = tonumber(v[1])
  local ts = tonumber(v[2])
  if level == nil or ts == nil then
    level = cap
    ts = t
  end
  level = math.min(cap, level + math.max(0, t - ts) * rate)
  levels[i] = level
  if level < cost then ok = 0 end
end
local out = {tostring(ok)}
for i = 1, #KEYS do
  local cap = tonumber(ARGV[3*i-2])
  local rate = tonumber(ARGV[3*i-1])
  local level = levels[i]
  if ok == 1 then level = level - tonumber(ARGV[3*i]) end
  redis.call('HSET', KEYS[i], 'v', string.format('%.17g', level), 't', string.format('%.17g', t))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) / rate) + 1000)
  out[i + 1] = string.format('%.17g', level)
end
return out
";

/// Adds ARGV's cost back to each bucket (negative: takes more), capped at capacity.
const REFUND: &str = r"
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000
for i = 1, #KEYS do
  local cap = tonumber(ARGV[3*i-2])
  local rate = tonumber(ARGV[3*i-1])
  local v = redis.call('HMGET', KEYS[i], 'v', 't')
  local level = tonumber(v[1])
  local ts = tonumber(v[2])
  if level == nil or ts == nil then
    level = cap
    ts = t
  end
  level = math.min(cap, math.min(cap, level + math.max(0, t - ts) * rate) + tonumber(ARGV[3*i]))
  redis.call('HSET', KEYS[i], 'v', string.format('%.17g', level), 't', string.format('%.17g', t))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) / rate) + 1000)
end
return 1
";

/// Buckets in Redis, shared by every replica.
pub struct RedisLimiter {
    conn: Arc<RedisConn>,
    acquire: redis::Script,
    refund: redis::Script,
}

impl RedisLimiter {
    /// Parses the URL; the connection is made on first use (and again after a failure),
    /// so a gateway starts even while Redis is down and fails open or closed as configured.
    pub fn new(url: &str) -> Result<Self, LimiterError> {
        Ok(Self::with_connection(Arc::new(
            RedisConn::new(url).map_err(LimiterError)?,
        )))
    }

    /// A limiter on a connection shared with the rest of the gateway.
    pub fn with_connection(conn: Arc<RedisConn>) -> Self {
        RedisLimiter {
            conn,
            acquire: redis::Script::new(ACQUIRE),
            refund: redis::Script::new(REFUND),
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        charges: &[Charge],
    ) -> Result<T, LimiterError> {
        let mut inv = script.prepare_invoke();
        for c in charges {
            inv.key(&c.key);
        }
        for c in charges {
            inv.arg(c.capacity).arg(c.per_sec / 1000.0).arg(c.cost);
        }
        self.conn
            .run(|mut c| async move { inv.invoke_async::<T>(&mut c).await })
            .await
            .map_err(LimiterError)
    }
}

impl Limiter for RedisLimiter {
    fn acquire<'a>(&'a self, charges: &'a [Charge]) -> BoxFuture<'a, Result<Outcome, LimiterError>> {
        Box::pin(async move {
            let out: Vec<String> = self.run(&self.acquire, charges).await?;
            let bad = || LimiterError("unexpected script reply".into());
            let (first, rest) = out.split_first().ok_or_else(bad)?;
            let remaining = rest
                .iter()
                .map(|s| s.parse::<f64>().map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()?;
            if remaining.len() != charges.len() {
                return Err(bad());
            }
            Ok(Outcome {
                allowed: first == "1",
                remaining,
            })
        })
    }
    fn refund<'a>(&'a self, charges: &'a [Charge]) -> BoxFuture<'a, Result<(), LimiterError>> {
        Box::pin(async move {
            let _: i64 = self.run(&self.refund, charges).await?;
            Ok(())
        })
    }
    fn name(&self) -> &'static str {
        "redis"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dim {
    Requests,
    Tokens,
}

/// What an admitted request holds: its token reservations (settled after the call) and
/// the rate-limit headers for the response.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    reserved: Vec<Charge>,
    pub headers: Vec<(&'static str, String)>,
}

impl Admission {
    /// Tokens reserved (the largest reservation over the token rules).
    pub fn reserved_tokens(&self) -> u64 {
        self.reserved.iter().map(|c| c.cost as u64).max().unwrap_or(0)
    }
}

/// The configured rules over a [`Limiter`].
pub struct RateLimits {
    rules: Vec<RateLimitRule>,
    store: Arc<dyn Limiter>,
    failure: FailureMode,
    prefix: String,
}

/// A scope value, hashed so that store keys stay short whatever a caller's id is.
fn scope_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// The teams a principal belongs to: its `team:<name>` role entries.
pub fn teams(p: &Principal) -> impl Iterator<Item = &str> {
    p.roles.iter().filter_map(|r| r.strip_prefix("team:"))
}

/// How a limiter failure was handled.
#[derive(Debug)]
pub enum Failure {
    /// Admitted without limits (`fail open`).
    Open(LimiterError),
    /// Refused (`fail closed`).
    Closed(GatewayError),
}

impl RateLimits {
    pub fn new(rules: Vec<RateLimitRule>, store: Arc<dyn Limiter>, failure: FailureMode) -> Self {
        Self::with_prefix(rules, store, failure, "palisade")
    }

    /// Keys start with `{prefix}:rl:` (`redis_prefix` in the configuration).
    pub fn with_prefix(rules: Vec<RateLimitRule>, store: Arc<dyn Limiter>, failure: FailureMode, prefix: &str) -> Self {
        RateLimits {
            rules,
            store,
            failure,
            prefix: format!("{prefix}:rl"),
        }
    }

    pub fn store_name(&self) -> &'static str {
        self.store.name()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn charges(&self, p: &Principal, model: &str, tokens: u64) -> Vec<(usize, Dim, Charge)> {
        let mut out = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if !r.applies_to(model) {
                continue;
            }
            let scopes: Vec<String> = match r.scope {
                Scope::Key => vec![scope_hash(&["key", &p.id])],
                Scope::Team => teams(p).map(|t| scope_hash(&["team", t])).collect(),
                Scope::Model => vec![scope_hash(&["model", model])],
                Scope::KeyModel => vec![scope_hash(&["key-model", &p.id, model])],
                Scope::Global => vec![scope_hash(&["global"])],
            };
            let window = r.window_secs as f64;
            for s in scopes {
                if let Some(n) = r.requests {
                    out.push((
                        i,
                        Dim::Requests,
                        Charge {
                            key: format!("{}:{}:r:{s}", self.prefix, r.name),
                            capacity: n as f64,
                            per_sec: n as f64 / window,
                            cost: 1.0,
                        },
                    ));
                }
                if let Some(n) = r.tokens {
                    // A reservation larger than the bucket could never be admitted; it
                    // waits for a full bucket instead, and usage settles the rest.
                    out.push((
                        i,
                        Dim::Tokens,
                        Charge {
                            key: format!("{}:{}:t:{s}", self.prefix, r.name),
                            capacity: n as f64,
                            per_sec: n as f64 / window,
                            cost: (tokens as f64).min(n as f64),
                        },
                    ));
                }
            }
        }
        out
    }

    /// Admits a request that may use up to `tokens` tokens (0 for non-LLM requests), or
    /// refuses it with 429 and `retry-after`.
    pub async fn admit(&self, p: &Principal, model: &str, tokens: u64) -> Result<Admission, Failure> {
        let charges = self.charges(p, model, tokens);
        if charges.is_empty() {
            return Ok(Admission::default());
        }
        let plain: Vec<Charge> = charges.iter().map(|(_, _, c)| c.clone()).collect();
        let outcome = match self.store.acquire(&plain).await {
            Ok(o) => o,
            Err(e) => {
                return Err(match self.failure {
                    FailureMode::Open => Failure::Open(e),
                    FailureMode::Closed => Failure::Closed(
                        GatewayError::new(
                            Kind::Unavailable,
                            "rate limiting is unavailable; request refused (fail closed)",
                        )
                        .retry_after(1),
                    ),
                })
            }
        };
        let headers = headers(&charges, &outcome);
        if outcome.allowed {
            let reserved = charges
                .into_iter()
                .filter(|(_, d, _)| *d == Dim::Tokens)
                .map(|(_, _, c)| c)
                .collect();
            return Ok(Admission { reserved, headers });
        }
        // The first rule without room names the refusal; retry when every bucket has room.
        let mut retry = 0.0f64;
        let mut rule = "";
        for ((i, dim, c), level) in charges.iter().zip(&outcome.remaining) {
            if *level < c.cost {
                if rule.is_empty() {
                    rule = &self.rules[*i].name;
                }
                let _ = dim;
                retry = retry.max((c.cost - level) / c.per_sec);
            }
        }
        let mut e = GatewayError::new(
            Kind::RateLimited,
            format!("rate limit `{rule}` exceeded; retry after the time in retry-after"),
        )
        .retry_after(retry.ceil() as u64);
        e.headers = headers;
        e.headers.push(("x-ratelimit-rule", rule.to_owned()));
        Err(Failure::Closed(e))
    }

    /// Settles an admitted request's token reservations with what it used.
    pub async fn settle(&self, admission: &Admission, used_tokens: u64) -> Result<(), LimiterError> {
        if admission.reserved.is_empty() {
            return Ok(());
        }
        let adjust: Vec<Charge> = admission
            .reserved
            .iter()
            .map(|c| Charge {
                cost: c.cost - used_tokens as f64,
                ..c.clone()
            })
            .filter(|c| c.cost != 0.0)
            .collect();
        if adjust.is_empty() {
            return Ok(());
        }
        self.store.refund(&adjust).await
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` from the tightest bucket of
/// each kind (OpenAI's header names; reset is the time until the bucket is full).
fn headers(charges: &[(usize, Dim, Charge)], outcome: &Outcome) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (dim, names) in [
        (
            Dim::Requests,
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
        ),
        (
            Dim::Tokens,
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        ),
    ] {
        let tightest = charges
            .iter()
            .zip(&outcome.remaining)
            .filter(|((_, d, _), _)| *d == dim)
            .min_by(|a, b| a.1.total_cmp(b.1));
        if let Some(((_, _, c), level)) = tightest {
            let level = level.max(0.0);
            let reset = ((c.capacity - level) / c.per_sec).ceil().max(0.0) as u64;
            out.push((names[0], format!("{}", c.capacity as u64)));
            out.push((names[1], format!("{}", level.floor() as u64)));
            out.push((names[2], format!("{reset}s")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_auth::Method;

    fn principal(id: &str, roles: &[&str]) -> Principal {
        Principal {
            id: id.into(),
            subject: id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            method: Method::ApiKey,
        }
    }

    fn rule(name: &str, scope: Scope, requests: Option<u64>, tokens: Option<u64>) -> RateLimitRule {
        RateLimitRule {
            name: name.into(),
            scope,
            models: vec!["*".into()],
            requests,
            tokens,
            window_secs: 3600,
        }
    }

    fn limits(rules: Vec<RateLimitRule>) -> RateLimits {
        RateLimits::new(rules, Arc::new(MemoryLimiter::default()), FailureMode::Closed)
    }

    async fn count_admitted(l: &RateLimits, p: &Principal, model: &str, n: usize) -> usize {
        let mut ok = 0;
        for _ in 0..n {
            if l.admit(p, model, 0).await.is_ok() {
                ok += 1;
            }
        }
        ok
    }

    #[tokio::test]
    async fn each_scope_has_its_own_buckets() {
        let table = [
            (Scope::Key, ("a", "m1"), ("a", "m2"), true),
            (Scope::Key, ("a", "m1"), ("b", "m1"), false),
            (Scope::Model, ("a", "m1"), ("b", "m1"), true),
            (Scope::Model, ("a", "m1"), ("a", "m2"), false),
            (Scope::KeyModel, ("a", "m1"), ("a", "m2"), false),
            (Scope::Global, ("a", "m1"), ("b", "m2"), true),
        ];
        for (scope, (k1, m1), (k2, m2), shared) in table {
            let l = limits(vec![rule("r", scope, Some(3), None)]);
            assert_eq!(count_admitted(&l, &principal(k1, &[]), m1, 3).await, 3);
            let second = count_admitted(&l, &principal(k2, &[]), m2, 1).await;
            assert_eq!(second == 0, shared, "{scope:?}: second caller admitted {second}");
        }
    }

    #[tokio::test]
    async fn teams_share_a_bucket_and_callers_without_a_team_are_not_limited() {
        let l = limits(vec![rule("team", Scope::Team, Some(2), None)]);
        let a = principal("a", &["invoker", "team:ml"]);
        let b = principal("b", &["team:ml"]);
        let loner = principal("c", &["invoker"]);
        assert_eq!(count_admitted(&l, &a, "m", 1).await, 1);
        assert_eq!(count_admitted(&l, &b, "m", 3).await, 1);
        assert_eq!(count_admitted(&l, &loner, "m", 5).await, 5);
    }

    #[tokio::test]
    async fn refusal_names_the_rule_and_when_to_retry() {
        let l = limits(vec![rule("tight", Scope::Key, Some(1), None)]);
        let p = principal("a", &[]);
        let ok = l.admit(&p, "m", 0).await.unwrap();
        let h: HashMap<_, _> = ok.headers.iter().cloned().collect();
        assert_eq!(h["x-ratelimit-limit-requests"], "1");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-reset-requests"], "3600s");
        let Err(Failure::Closed(e)) = l.admit(&p, "m", 0).await else {
            panic!("second request admitted")
        };
        assert_eq!(e.kind, Kind::RateLimited);
        assert!(e.message.contains("`tight`"));
        // One request per hour: the next one is possible in 3600 s.
        assert_eq!(e.retry_after, Some(3600));
    }

    #[tokio::test]
    async fn a_refused_request_charges_no_bucket() {
        let l = limits(vec![
            rule("roomy", Scope::Key, Some(100), None),
            rule("tight", Scope::Global, Some(1), None),
        ]);
        let p = principal("a", &[]);
        l.admit(&p, "m", 0).await.unwrap();
        for _ in 0..5 {
            assert!(l.admit(&p, "m", 0).await.is_err());
        }
        let only_roomy = limits(vec![rule("roomy", Scope::Key, Some(100), None)]);
        let _ = only_roomy;
        // "roomy" was charged once (for the admitted request) and not for the refusals.
        let h = l.charges(&p, "m", 0).into_iter().map(|(_, _, c)| c).collect::<Vec<_>>();
        let levels = l.store.acquire(&h[..1]).await.unwrap();
        assert_eq!(levels.remaining[0].round(), 98.0);
    }

    #[tokio::test]
    async fn tokens_are_reserved_then_settled() {
        let l = limits(vec![rule("tok", Scope::Key, None, Some(1000))]);
        let p = principal("a", &[]);
        let a = l.admit(&p, "m", 600).await.unwrap();
        assert_eq!(a.reserved_tokens(), 600);
        // 400 left: a second 600-token reservation does not fit…
        assert!(l.admit(&p, "m", 600).await.is_err());
        // …until the first settles at 100 used (500 returned).
        l.settle(&a, 100).await.unwrap();
        let b = l.admit(&p, "m", 600).await.unwrap();
        let h: HashMap<_, _> = b.headers.iter().cloned().collect();
        assert_eq!(h["x-ratelimit-remaining-tokens"], "300");
        // Using more than reserved takes the difference.
        l.settle(&b, 800).await.unwrap();
        let c = l.admit(&p, "m", 100).await.unwrap();
        let h: HashMap<_, _> = c.headers.iter().cloned().collect();
        assert_eq!(h["x-ratelimit-remaining-tokens"], "0");
    }

    #[tokio::test]
    async fn buckets_refill_over_their_window() {
        let mut r = rule("fast", Scope::Key, Some(2), None);
        r.window_secs = 1;
        let l = limits(vec![r]);
        let p = principal("a", &[]);
        assert_eq!(count_admitted(&l, &p, "m", 3).await, 2);
        // Poll (bounded) until a unit has refilled: 2 per second.
        let start = Instant::now();
        loop {
            if l.admit(&p, "m", 0).await.is_ok() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no refill");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn rules_apply_only_to_their_models() {
        let mut r = rule("only-a", Scope::Key, Some(1), None);
        r.models = vec!["a".into()];
        let l = limits(vec![r]);
        let p = principal("k", &[]);
        assert_eq!(count_admitted(&l, &p, "a", 3).await, 1);
        assert_eq!(count_admitted(&l, &p, "b", 3).await, 3);
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_closed_or_open_as_configured() {
        // Nothing listens on port 9 of loopback.
        let store: Arc<dyn Limiter> = Arc::new(RedisLimiter::new("redis://127.0.0.1:9/").unwrap());
        let r = vec![rule("r", Scope::Key, Some(10), None)];
        let p = principal("a", &[]);
        let closed = RateLimits::new(r.clone(), store.clone(), FailureMode::Closed);
        match closed.admit(&p, "m", 0).await {
            Err(Failure::Closed(e)) => assert_eq!(e.kind, Kind::Unavailable),
            other => panic!("{other:?}"),
        }
        let open = RateLimits::new(r, store, FailureMode::Open);
        assert!(matches!(open.admit(&p, "m", 0).await, Err(Failure::Open(_))));
    }
}
