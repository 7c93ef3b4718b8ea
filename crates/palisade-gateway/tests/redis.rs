//! Rate limits in the machine's Redis (127.0.0.1:6379; `PALISADE_TEST_REDIS` overrides):
//! two limiters with their own connections — as two gateway replicas have — admit
//! exactly the limit under concurrent load, token reservations settle, and buckets
//! refill. Fails loudly when Redis is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{redis_url as url, require_redis, unique};
use palisade_auth::{Method, Principal};
use palisade_gateway::config::{FailureMode, RateLimitRule, Scope};
use palisade_gateway::ratelimit::{Limiter, RateLimits, RedisLimiter};

fn principal(id: &str) -> Principal {
    Principal {
        id: id.into(),
        subject: id.into(),
        roles: vec!["invoker".into()],
        method: Method::ApiKey,
    }
}

fn replica(rules: &[RateLimitRule]) -> Arc<RateLimits> {
    let store: Arc<dyn Limiter> = Arc::new(RedisLimiter::new(&url()).unwrap());
    Arc::new(RateLimits::new(rules.to_vec(), store, FailureMode::Closed))
}

#[tokio::test]
async fn two_replicas_admit_exactly_the_limit_under_concurrent_load() {
    require_redis().await;
    let rule = RateLimitRule {
        name: unique("exact"),
        scope: Scope::Key,
        models: vec!["*".into()],
        requests: Some(50),
        tokens: None,
        window_secs: 3600,
    };
    let (a, b) = (
        replica(std::slice::from_ref(&rule)),
        replica(std::slice::from_ref(&rule)),
    );
    let p = Arc::new(principal("pk_shared"));
    let mut tasks = Vec::new();
    for i in 0..400 {
        let l = if i % 2 == 0 { a.clone() } else { b.clone() };
        let p = p.clone();
        tasks.push(tokio::spawn(async move { l.admit(&p, "m", 0).await.is_ok() }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    // One hour's refill during the test is < 0.1 request: exactly 50.
    assert_eq!(admitted, 50);
}

#[tokio::test]
async fn token_reservations_settle_in_redis() {
    require_redis().await;
    let rule = RateLimitRule {
        name: unique("tokens"),
        scope: Scope::Team,
        models: vec!["*".into()],
        requests: None,
        tokens: Some(1000),
        window_secs: 3600,
    };
    let (a, b) = (
        replica(std::slice::from_ref(&rule)),
        replica(std::slice::from_ref(&rule)),
    );
    let mut p = principal("pk_a");
    p.roles.push("team:ml".into());
    let mut q = principal("pk_b");
    q.roles.push("team:ml".into());
    let first = a.admit(&p, "m", 700).await.unwrap();
    // The team's other member, on the other replica, sees the reservation.
    assert!(b.admit(&q, "m", 700).await.is_err());
    a.settle(&first, 100).await.unwrap();
    let second = b.admit(&q, "m", 700).await.unwrap();
    let remaining: u64 = second
        .headers
        .iter()
        .find(|(k, _)| *k == "x-ratelimit-remaining-tokens")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(remaining, 200);
}

#[tokio::test]
async fn buckets_refill_by_the_redis_clock() {
    require_redis().await;
    let rule = RateLimitRule {
        name: unique("refill"),
        scope: Scope::Global,
        models: vec!["*".into()],
        requests: Some(2),
        tokens: None,
        window_secs: 1,
    };
    let l = replica(&[rule]);
    let p = principal("pk_r");
    assert!(l.admit(&p, "m", 0).await.is_ok());
    assert!(l.admit(&p, "m", 0).await.is_ok());
    assert!(l.admit(&p, "m", 0).await.is_err());
    let start = std::time::Instant::now();
    loop {
        if l.admit(&p, "m", 0).await.is_ok() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never refilled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(start.elapsed() >= Duration::from_millis(300), "refilled too early");
}
