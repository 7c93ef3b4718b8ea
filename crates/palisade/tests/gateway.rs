//! The gateway as users run it: `palisade serve` processes on loopback, a real ONNX model
//! pushed to and promoted in the registry, the mock OpenAI upstream, the machine's Redis
//! shared by two gateway processes, and a canary rolled back when its upstream starts
//! failing — every step in the registry's verifiable audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{call, start_with, stop};
use serde_json::{json, Value};

fn cli(args: &[&str], server: &str, token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env("PALISADE_SERVER", server)
        .env("PALISADE_TOKEN", token)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

fn token_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../palisade-gateway/tests/fixtures")
        .join(name)
}

/// A model directory with the iris ONNX model (and its data profile).
fn iris_dir(at: &Path, note: &str) -> PathBuf {
    std::fs::create_dir_all(at).unwrap();
    std::fs::copy(fixture("iris_mlp.onnx"), at.join("model.onnx")).unwrap();
    std::fs::copy(fixture("iris_mlp.profile.json"), at.join("iris.profile.json")).unwrap();
    std::fs::write(at.join("README.md"), note).unwrap();
    at.to_path_buf()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn infer(addr: &str, token: &str) -> (u16, Value) {
    call(
        "POST",
        &format!("{addr}/v2/models/iris/infer"),
        Some(token),
        Some(
            json!({ "inputs": [{ "name": "input", "shape": [2, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6.0, 2.5] }] }),
        ),
    )
}

#[test]
fn a_promoted_onnx_model_is_served_and_follows_its_alias() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("palisade.toml");
    std::fs::write(
        &config,
        "[gateway]\nmodel_refresh_secs = 1\n[[gateway.models]]\nname = \"iris\"\nkind = \"onnx\"\n[[gateway.models.backends]]\nname = \"prod\"\nalias = \"production\"\n",
    )
    .unwrap();
    let home = t.path().join("home");
    let (mut server, addr, admin) = start_with(&home, true, &["--config", config.to_str().unwrap()]);
    let admin = admin.unwrap_or_else(|_| panic!("admin key"));
    // Before a promotion the model is not ready, and readiness says so.
    assert_eq!(call("GET", &format!("{addr}/v2/health/ready"), None, None).0, 503);
    let v1 = iris_dir(&t.path().join("v1"), "first");
    ok(cli(&["push", v1.to_str().unwrap(), "--name", "iris"], &addr, &admin));
    ok(cli(&["promote", "iris@1", "--alias", "production"], &addr, &admin));
    let app = token_of(&ok(cli(
        &["keys", "create", "--subject", "app", "--role", "invoker:iris"],
        &addr,
        &admin,
    )));
    wait_until("the model to load", Duration::from_secs(15), || {
        call("GET", &format!("{addr}/v2/models/iris/ready"), Some(&app), None).0 == 200
    });
    let (status, v) = infer(&addr, &app);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model_version"], "1");
    assert_eq!(v["outputs"][0]["data"], json!([0, 2]));
    assert_eq!(
        call("POST", &format!("{addr}/v2/models/iris/infer"), None, Some(json!({}))).0,
        401
    );
    assert_eq!(call("GET", &format!("{addr}/v2/health/live"), None, None).0, 200);
    // A new version promoted in the registry is picked up without a restart.
    let v2 = iris_dir(&t.path().join("v2"), "second");
    ok(cli(&["push", v2.to_str().unwrap(), "--name", "iris"], &addr, &admin));
    ok(cli(&["promote", "iris@2", "--alias", "production"], &addr, &admin));
    wait_until("version 2 to be served", Duration::from_secs(15), || {
        infer(&addr, &app).1["model_version"] == "2"
    });
    // The loads are in the registry's audit log, which verifies.
    let (_, events) = call("GET", &format!("{addr}/api/v1/audit/events"), Some(&admin), None);
    let loads: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "load-model")
        .collect();
    assert_eq!(loads.len(), 2, "{events}");
    assert_eq!(loads[1]["detail"]["version"], 2);
    let vkey = ureq::get(&format!("{addr}/api/v1/audit/key"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    ok(cli(&["audit", "verify", "--key", vkey.trim()], &addr, &admin));
    assert_eq!(stop(&mut server), 0);
}

/// The mock OpenAI upstream on its own runtime thread; returns its base URL and state.
fn mock_upstream(name: &str, key: &str) -> (String, std::sync::Arc<palisade_gateway::mock::MockState>) {
    let state = palisade_gateway::mock::MockState::new(name, Some(key));
    let (tx, rx) = std::sync::mpsc::channel();
    let s = state.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let addr = palisade_gateway::mock::spawn(s, 0).await.unwrap();
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/v1"), state)
}

fn chat(addr: &str, token: &str) -> u16 {
    call(
        "POST",
        &format!("{addr}/v1/chat/completions"),
        Some(token),
        Some(json!({ "model": "chat", "messages": [{ "role": "user", "content": "What is the capital of France?" }] })),
    )
    .0
}

/// `threads × each` chat requests at once, request `j` of thread `i` to server
/// `(i + j) % servers.len()`: how many were admitted (200) and limited (429), and every
/// status.
fn chats_from_threads(servers: &[String], token: &str, threads: usize, each: usize) -> (usize, usize, Vec<u16>) {
    let codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    (0..each)
                        .map(|j| chat(&servers[(i + j) % servers.len()], token))
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let admitted = codes.iter().filter(|c| **c == 200).count();
    let limited = codes.iter().filter(|c| **c == 429).count();
    (admitted, limited, codes)
}

#[test]
fn two_gateway_processes_enforce_one_limit_through_redis() {
    let redis = std::env::var("PALISADE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let (upstream, _) = mock_upstream("mock", "sk-up");
    let t = tempfile::tempdir().unwrap();
    let rule = format!(
        "shared-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let config = t.path().join("palisade.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nredis_url = \"{redis}\"\nredis_prefix = \"{rule}\"\n[[gateway.upstreams]]\nname = \"mock\"\nurl = \"{upstream}\"\napi_key_env = \"MOCK_KEY\"\n\
             [[gateway.models]]\nname = \"chat\"\nkind = \"openai\"\n[[gateway.models.backends]]\nname = \"a\"\nupstream = \"mock\"\n\
             [[gateway.rate_limits]]\nname = \"{rule}\"\nscope = \"key\"\nrequests = 30\nwindow_secs = 3600\n"
        ),
    )
    .unwrap();
    std::env::set_var("MOCK_KEY", "sk-up");
    let home = t.path().join("home");
    let cfg = config.to_str().unwrap();
    let (mut first, a, admin) = start_with(&home, true, &["--config", cfg]);
    let admin = admin.unwrap_or_else(|_| panic!("admin key"));
    let (mut second, b, _) = start_with(&home, false, &["--config", cfg, "--only", "gateway"]);
    assert_eq!(
        call("GET", &format!("{b}/api/v1/models"), Some(&admin), None).0,
        404,
        "--only gateway serves no registry"
    );
    assert_eq!(call("GET", &format!("{b}/health"), None, None).0, 200);
    let app = token_of(&ok(cli(
        &["keys", "create", "--subject", "app", "--role", "invoker"],
        &a,
        &admin,
    )));
    // 120 requests from 12 threads, alternating between the two processes.
    let (admitted, limited, codes) = chats_from_threads(&[a.clone(), b.clone()], &app, 12, 10);
    assert_eq!((admitted, limited), (30, 90), "{codes:?}");
    assert_eq!(stop(&mut second), 0);
    assert_eq!(stop(&mut first), 0);
}

#[test]
fn a_canary_rolls_back_when_its_upstream_starts_failing() {
    let (blue, _) = mock_upstream("blue", "sk-up");
    let (green, green_state) = mock_upstream("green", "sk-up");
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("palisade.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\n[[gateway.upstreams]]\nname = \"blue\"\nurl = \"{blue}\"\napi_key_env = \"MOCK_KEY\"\n\
             [[gateway.upstreams]]\nname = \"green\"\nurl = \"{green}\"\napi_key_env = \"MOCK_KEY\"\n\
             [[gateway.models]]\nname = \"chat\"\nkind = \"openai\"\n\
             [[gateway.models.backends]]\nname = \"blue\"\nupstream = \"blue\"\n\
             [[gateway.models.backends]]\nname = \"green\"\nupstream = \"green\"\n"
        ),
    )
    .unwrap();
    std::env::set_var("MOCK_KEY", "sk-up");
    let home = t.path().join("home");
    let (mut server, addr, admin) = start_with(&home, true, &["--config", config.to_str().unwrap()]);
    let admin = admin.unwrap_or_else(|_| panic!("admin key"));
    let app = token_of(&ok(cli(
        &["keys", "create", "--subject", "app", "--role", "invoker"],
        &addr,
        &admin,
    )));
    let (status, v) = call(
        "POST",
        &format!("{addr}/gateway/v1/deployments/chat/canary"),
        Some(&admin),
        Some(json!({ "backend": "green", "steps": [30, 60, 100], "interval_secs": 1.0, "min_requests": 3 })),
    );
    assert_eq!(status, 200, "{v}");
    let state = || {
        call(
            "GET",
            &format!("{addr}/gateway/v1/deployments/chat"),
            Some(&admin),
            None,
        )
        .1
    };
    // Traffic until the first step has passed (weight 60)…
    let start = Instant::now();
    while state()["canary"]["weight"] != 60 {
        assert_eq!(chat(&addr, &app), 200);
        assert!(start.elapsed() < Duration::from_secs(20), "{}", state());
    }
    // …then the candidate's upstream starts failing.
    *green_state.control.lock() = palisade_gateway::mock::Control {
        fail_rate: 1.0,
        delay_ms: 0,
    };
    let start = Instant::now();
    while state()["status"] != "rolled-back" {
        let _ = chat(&addr, &app);
        assert!(start.elapsed() < Duration::from_secs(20), "{}", state());
    }
    let s = state();
    assert_eq!(s["stable"], "blue");
    assert!(s["last_change"].as_str().unwrap().contains("error rate"), "{s}");
    // After the rollback every request succeeds again (blue serves all).
    for _ in 0..10 {
        assert_eq!(chat(&addr, &app), 200);
    }
    let (_, events) = call("GET", &format!("{addr}/api/v1/audit/events"), Some(&admin), None);
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in ["deploy-canary", "deploy-canary-step", "deploy-rollback"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let vkey = ureq::get(&format!("{addr}/api/v1/audit/key"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    ok(cli(&["audit", "verify", "--key", vkey.trim()], &addr, &admin));
    assert_eq!(stop(&mut server), 0);
}

#[test]
fn per_thread_serving_proxies_and_keeps_one_limit_across_its_threads() {
    let (upstream, mock) = mock_upstream("mock", "sk-up-pt");
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("palisade.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nthreading = \"per-thread\"\nworkers = 3\n\
             [[gateway.upstreams]]\nname = \"mock\"\nurl = \"{upstream}\"\napi_key_env = \"MOCK_KEY_PT\"\n\
             [[gateway.models]]\nname = \"chat\"\nkind = \"openai\"\n[[gateway.models.backends]]\nname = \"a\"\nupstream = \"mock\"\n\
             [[gateway.rate_limits]]\nname = \"per-key\"\nscope = \"key\"\nrequests = 25\nwindow_secs = 3600\n"
        ),
    )
    .unwrap();
    std::env::set_var("MOCK_KEY_PT", "sk-up-pt");
    let home = t.path().join("home");
    let (mut server, a, admin) = start_with(&home, true, &["--config", config.to_str().unwrap()]);
    let admin = admin.unwrap_or_else(|_| panic!("admin key"));
    let app = token_of(&ok(cli(
        &["keys", "create", "--subject", "app", "--role", "invoker"],
        &a,
        &admin,
    )));
    // 100 requests on fresh connections from 10 threads: the kernel spreads them over
    // the three listeners, and the one in-process limit still admits exactly 25.
    let (admitted, limited, codes) = chats_from_threads(std::slice::from_ref(&a), &app, 10, 10);
    assert_eq!((admitted, limited), (25, 75), "{codes:?}");
    assert_eq!(
        mock.requests.load(std::sync::atomic::Ordering::Relaxed),
        25,
        "only admitted requests reach the upstream"
    );
    // The registry is served by the same threads.
    assert_eq!(call("GET", &format!("{a}/api/v1/models"), Some(&admin), None).0, 200);
    assert_eq!(
        stop(&mut server),
        0,
        "every thread drains and the process exits cleanly"
    );
}
