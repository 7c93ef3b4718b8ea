//! Two gateway replicas sharing deployment state through the machine's Redis
//! (127.0.0.1:6379; `PALISADE_TEST_REDIS` overrides): a canary started on one replica is
//! routed by both, judged once on both replicas' counts together, and an operator change
//! on either replica reaches the other. The store's compare-and-set and lease are checked
//! directly. Fails loudly when Redis is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{harness, redis_url as url, require_redis, unique as prefix, Harness};
use palisade_gateway::deploy_store::{DeployStore, RedisDeployStore, Shared, Stats, Status};
use palisade_gateway::redis_conn::RedisConn;
use serde_json::{json, Value};

fn config(prefix: &str) -> String {
    format!(
        r#"
model_refresh_secs = 0
redis_url = "{}"
redis_prefix = "{prefix}"
deploy_sync_ms = 100

[[upstreams]]
name = "mock"
url = "MOCK"
api_key_env = "PALISADE_TEST_PROVIDER_KEY"

[[models]]
name = "chat"
kind = "openai"
[[models.backends]]
name = "blue"
upstream = "mock"
upstream_model = "gpt-blue"
[[models.backends]]
name = "green"
upstream = "mock"
upstream_model = "gpt-green"
"#,
        url()
    )
}

fn view(h: &Harness) -> Value {
    serde_json::to_value(h.gw.deployments.get("chat").unwrap().view()).unwrap()
}

async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn green(h: &Harness) -> u64 {
    h.mock.by_model.lock().get("gpt-green").copied().unwrap_or(0)
}

/// Sends chat requests through `h` until exactly `n` of them have gone to green.
async fn canary_requests(h: &Harness, token: &str, n: u64) {
    let body =
        json!({ "model": "chat", "messages": [{ "role": "user", "content": "What is the capital of France?" }] });
    let start = Instant::now();
    while green(h) < n {
        assert_eq!(h.post("/v1/chat/completions", token, &body).await.status, 200);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the canary gets no traffic here"
        );
    }
    assert_eq!(green(h), n);
}

#[tokio::test]
async fn replicas_route_one_canary_and_judge_it_once_on_everyones_counts() {
    require_redis().await;
    let p = prefix("canary");
    let (a, b) = (harness(&config(&p)).await, harness(&config(&p)).await);
    let (_, op) = a.keys.add("ops", &["approver", "monitor"]);
    let (_, op_b) = b.keys.add("ops", &["approver", "monitor"]);
    let (_, ta) = a.keys.add("svc", &["invoker"]);
    let (_, tb) = b.keys.add("svc", &["invoker"]);

    // 12 requests are needed and each replica will see 6 of them: the step passes only if
    // the two replicas' counts are added up.
    let spec = json!({ "backend": "green", "steps": [50, 100], "interval_secs": 1.5, "min_requests": 12, "max_error_rate": 0.0 });
    let r = a.post("/gateway/v1/deployments/chat/canary", &op, &spec).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let started = r.json()["generation"].as_u64().unwrap();
    until(Duration::from_secs(3), "replica b to adopt the canary", || {
        view(&b)["generation"] == started
    })
    .await;
    assert_eq!(view(&b)["canary"]["weight"], 50);
    canary_requests(&a, &ta, 6).await;
    canary_requests(&b, &tb, 6).await;

    until(Duration::from_secs(10), "the step to be judged", || {
        view(&a)["canary"]["weight"] == 100 || view(&a)["status"] != "canary"
    })
    .await;
    assert_eq!(view(&a)["status"], "canary", "{}", view(&a));
    until(Duration::from_secs(3), "replica b to follow", || {
        view(&b)["canary"]["weight"] == 100
    })
    .await;

    // Exactly one replica judged the step, on all twelve requests.
    let mut steps: Vec<_> = a.events().await;
    steps.extend(b.events().await);
    let steps: Vec<_> = steps.into_iter().filter(|e| e.action == "deploy-canary-step").collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0].detail["analysis"]["requests"], 12, "{:?}", steps[0]);
    assert_eq!(steps[0].detail["analysis"]["errors"], 0);

    // An operator change on the other replica reaches the first.
    let r = b.post("/gateway/v1/deployments/chat/rollback", &op_b, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    until(Duration::from_secs(3), "replica a to adopt the rollback", || {
        view(&a)["status"] == "rolled-back"
    })
    .await;
    assert_eq!(view(&a)["backends"][1]["weight"], 0);
    let before = green(&a);
    let body =
        json!({ "model": "chat", "messages": [{ "role": "user", "content": "What is the capital of France?" }] });
    for _ in 0..10 {
        assert_eq!(a.post("/v1/chat/completions", &ta, &body).await.status, 200);
    }
    assert_eq!(green(&a), before, "replica a still routes to the rolled-back canary");

    // A switch on a: b follows, and a replica started later starts from the shared state.
    let r = a
        .post(
            "/gateway/v1/deployments/chat/switch",
            &op,
            &json!({ "backend": "green" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    until(Duration::from_secs(3), "replica b to adopt the switch", || {
        view(&b)["stable"] == "green"
    })
    .await;
    let c = harness(&config(&p)).await;
    assert_eq!(view(&c)["stable"], "green");
    assert_eq!(view(&c)["previous"], "blue");
}

fn state(generation: u64, stable: &str) -> Shared {
    Shared {
        generation,
        stable: stable.into(),
        previous: None,
        canary: None,
        shadow: None,
        status: Status::Stable,
        last_change: format!("test {generation}"),
    }
}

#[tokio::test]
async fn the_redis_store_compares_generations_leases_once_and_adds_counts() {
    require_redis().await;
    let p = prefix("store");
    let one = RedisDeployStore::new(Arc::new(RedisConn::new(&url()).unwrap()), &p);
    let two = RedisDeployStore::new(Arc::new(RedisConn::new(&url()).unwrap()), &p);
    let m = "chat";
    assert_eq!(one.load(&[m.into()]).await.unwrap(), vec![None]);
    assert!(one.save(m, 0, &state(1, "blue")).await.unwrap());
    assert!(!two.save(m, 0, &state(1, "green")).await.unwrap(), "a stale writer won");
    assert!(two.save(m, 1, &state(2, "green")).await.unwrap());
    assert_eq!(one.load(&[m.into()]).await.unwrap(), vec![Some(state(2, "green"))]);

    let lease = one.lease(m).await.unwrap().expect("a free lease");
    assert!(two.lease(m).await.unwrap().is_none(), "the lease was granted twice");
    one.release(lease).await.unwrap();
    let again = two.lease(m).await.unwrap().expect("a released lease");
    two.release(again).await.unwrap();

    let mut x = Stats::default();
    let mut y = Stats::default();
    for i in 0..50u64 {
        x.record(true, Duration::from_micros(200 + i));
        y.record(i % 5 != 0, Duration::from_millis(30 + i));
    }
    one.add(m, 2, &x).await.unwrap();
    two.add(m, 2, &y).await.unwrap();
    let mut both = x.clone();
    both.merge(&y);
    assert_eq!(one.stats(m, 2).await.unwrap(), both);
    assert_eq!(one.stats(m, 3).await.unwrap(), Stats::default());
}

#[tokio::test]
async fn a_stored_state_naming_an_unknown_backend_is_ignored_and_replaced_by_the_next_change() {
    require_redis().await;
    let p = prefix("unknown");
    let store = RedisDeployStore::new(Arc::new(RedisConn::new(&url()).unwrap()), &p);
    assert!(store.save("chat", 0, &state(7, "purple")).await.unwrap());
    let h = harness(&config(&p)).await;
    assert_eq!(view(&h)["stable"], "blue", "an unknown backend must not be routed to");
    assert_eq!(view(&h)["generation"], 7);
    let (_, op) = h.keys.add("ops", &["approver"]);
    let r = h
        .post(
            "/gateway/v1/deployments/chat/switch",
            &op,
            &json!({ "backend": "green" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = store.load(&["chat".into()]).await.unwrap().remove(0).unwrap();
    assert_eq!((stored.generation, stored.stable.as_str()), (8, "green"));
}
