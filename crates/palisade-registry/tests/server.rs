//! The registry API end to end over real HTTP on 127.0.0.1: credentials, roles, push and
//! pull through the encrypted store, promotion, tamper detection, and the audit log's
//! checkpoint and proofs verified as a client would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use palisade_core::merkle;
use palisade_registry::audit::{self, Event, LogVerifier};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

struct Server {
    base: String,
    _rt: tokio::runtime::Runtime,
}

fn start(home: &Path) -> (Server, Option<String>) {
    start_with(
        home,
        palisade_registry::server::Options {
            max_blob: 1 << 30,
            ..Default::default()
        },
    )
}

fn start_with(home: &Path, options: palisade_registry::server::Options) -> (Server, Option<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (opened, addr) = rt.block_on(async {
        let opened = palisade_registry::server::open(home, options).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = palisade_registry::server::router(opened.registry.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (opened, addr)
    });
    (
        Server {
            base: format!("http://{addr}"),
            _rt: rt,
        },
        opened.first_admin_token,
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn call(method: &str, url: &str, token: Option<&str>, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = a.delete(url);
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r.call()
        }
        (m, body) => {
            let mut r = if m == "PUT" { a.put(url) } else { a.post(url) };
            if let Some(h) = &auth {
                r = r.header("Authorization", h);
            }
            r = r.header("Content-Type", "application/json");
            r.send(body.unwrap_or_default())
        }
    }
    .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().with_config().limit(1 << 30).read_to_vec().unwrap();
    (status, bytes)
}

fn json_call(method: &str, s: &Server, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let (st, b) = call(
        method,
        &format!("{}{path}", s.base),
        token,
        Some(serde_json::to_vec(&body).unwrap()),
    );
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn get(s: &Server, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    call("GET", &format!("{}{path}", s.base), token, None)
}

/// A fresh PostgreSQL schema on the machine's server (`PALISADE_TEST_POSTGRES`), as a
/// database URL; unreachable is a failure, not a skip.
fn postgres_url() -> String {
    let base =
        std::env::var("PALISADE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "palisade_srv_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is not reachable ({e}); run `bash .ci/services.sh`"));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

#[test]
fn registry_end_to_end() {
    registry_end_to_end_on(None);
}

/// The same end-to-end run with the metadata in PostgreSQL.
#[test]
fn registry_end_to_end_on_postgres() {
    registry_end_to_end_on(Some(postgres_url()));
}

fn registry_end_to_end_on(database_url: Option<String>) {
    let home = tempfile::tempdir().unwrap();
    let options = || palisade_registry::server::Options {
        max_blob: 1 << 30,
        database_url: database_url.clone(),
        ..Default::default()
    };
    let (s, admin) = start_with(home.path(), options());
    let admin = admin.expect("the first start prints an admin key");

    // Health needs nothing; everything else needs a valid key.
    assert_eq!(get(&s, "/health", None).0, 200);
    assert_eq!(get(&s, "/api/v1/models", None).0, 401);
    assert_eq!(get(&s, "/api/v1/models", Some("pk_0000.bogus")).0, 401);
    assert_eq!(get(&s, "/api/v1/models", Some(&admin)).0, 200);

    let key = |subject: &str, roles: Value| {
        let (st, v) = json_call(
            "POST",
            &s,
            "/api/v1/keys",
            Some(&admin),
            json!({ "subject": subject, "roles": roles }),
        );
        assert_eq!(st, 201, "{v}");
        v["token"].as_str().unwrap().to_owned()
    };
    let publisher = key("ci", json!(["publisher"]));
    let approver = key("release-manager", json!(["approver"]));
    let reader = key("serving", json!(["reader"]));
    let other_team = key("other", json!(["publisher:some-other-model"]));

    // Publisher: model, blob, version.
    let (st, _) = json_call(
        "POST",
        &s,
        "/api/v1/models",
        Some(&publisher),
        json!({ "name": "fraud", "description": "d" }),
    );
    assert_eq!(st, 201);
    let (st, _) = json_call("POST", &s, "/api/v1/models", Some(&reader), json!({ "name": "nope" }));
    assert_eq!(st, 403);
    let weights: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let config = br#"{"model_type":"tiny"}"#.to_vec();
    let mut files = Vec::new();
    for (path, data) in [("model.safetensors", &weights), ("config.json", &config)] {
        let digest = hex::encode(Sha256::digest(data));
        let (st, body) = call(
            "PUT",
            &format!("{}/api/v1/blobs/{digest}", s.base),
            Some(&publisher),
            Some(data.clone()),
        );
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
        files.push(json!({ "path": path, "digest": digest, "size": data.len() }));
    }
    // A blob whose content does not match its name is refused.
    let (st, _) = call(
        "PUT",
        &format!("{}/api/v1/blobs/{}", s.base, "ab".repeat(32)),
        Some(&publisher),
        Some(b"x".to_vec()),
    );
    assert_eq!(st, 400);
    let (st, _) = json_call(
        "POST",
        &s,
        "/api/v1/models/fraud/versions",
        Some(&other_team),
        json!({ "files": files }),
    );
    assert_eq!(st, 403, "a publisher scoped to another model");
    let (st, v) = json_call(
        "POST",
        &s,
        "/api/v1/models/fraud/versions",
        Some(&publisher),
        json!({ "files": files, "lineage": { "source_run": "run-1" } }),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["version"], 1);
    // The version's digest is the OpenSSF Model Signing digest of the same directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &weights).unwrap();
    std::fs::write(dir.path().join("config.json"), &config).unwrap();
    let manifest = palisade_sign::serialize::hash_model(dir.path(), &Default::default(), &|_| {}).unwrap();
    assert_eq!(v["digest"], manifest.root_digest_hex());
    let (st, _) = json_call(
        "POST",
        &s,
        "/api/v1/models/fraud/versions",
        Some(&publisher),
        json!({ "files": files }),
    );
    assert_eq!(st, 409, "the same content is the same version");

    // Reader pulls the exact bytes.
    let digest = files[0]["digest"].as_str().unwrap().to_owned();
    let (st, pulled) = get(&s, &format!("/api/v1/blobs/{digest}"), Some(&reader));
    assert_eq!(st, 200);
    assert!(pulled == weights);

    // Promotion: the approver, not the publisher.
    let (st, _) = json_call(
        "PUT",
        &s,
        "/api/v1/models/fraud/aliases/production",
        Some(&publisher),
        json!({ "version": 1 }),
    );
    assert_eq!(st, 403);
    let (st, _) = json_call(
        "PUT",
        &s,
        "/api/v1/models/fraud/aliases/production",
        Some(&approver),
        json!({ "version": 1 }),
    );
    assert_eq!(st, 200);
    let (st, body) = get(&s, "/api/v1/models/fraud/versions/production", Some(&reader));
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["version"], 1);

    // A flipped byte in the stored blob: pull refused and recorded.
    let mut blob_files = Vec::new();
    for e in walk(&home.path().join("store/blobs")) {
        if e.file_name().unwrap().to_str().unwrap().starts_with(&digest) {
            blob_files.push(e);
        }
    }
    let [stored] = blob_files.as_slice() else {
        panic!("one stored file for the digest: {blob_files:?}")
    };
    let mut bytes = std::fs::read(stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(stored, bytes).unwrap();
    let (st, body) = get(&s, &format!("/api/v1/blobs/{digest}"), Some(&reader));
    assert_eq!(st, 500);
    assert!(String::from_utf8_lossy(&body).contains("tamper"));

    // The audit log: events (admin only), a checkpoint signed with the log key, proofs.
    assert_eq!(get(&s, "/api/v1/audit/events", Some(&reader)).0, 403);
    let (_, vkey) = get(&s, "/api/v1/audit/key", None);
    let verifier = LogVerifier::parse(std::str::from_utf8(&vkey).unwrap()).unwrap();
    let (st, note) = get(&s, "/api/v1/audit/checkpoint", Some(&reader));
    assert_eq!(st, 200);
    let note = String::from_utf8(note).unwrap();
    let (_, events) = get(&s, "/api/v1/audit/events", Some(&admin));
    let events: Vec<Event> = serde_json::from_slice(&events).unwrap();
    let cp = audit::verify_log(&events, &note, &verifier).unwrap();
    let outcomes: Vec<(&str, &str)> = events.iter().map(|e| (e.action.as_str(), e.outcome.as_str())).collect();
    assert!(outcomes.contains(&("promote", "denied")), "{outcomes:?}");
    assert!(outcomes.contains(&("promote", "allowed")));
    assert!(
        events
            .iter()
            .any(|e| e.action == "authenticate" && e.outcome == "denied" && e.actor == "anonymous"),
        "anonymous requests are recorded"
    );
    assert!(outcomes.contains(&("pull-blob", "tamper")));
    let leaves: Vec<merkle::Hash> = events.iter().map(Event::leaf_hash).collect();
    let (_, p) = get(
        &s,
        &format!("/api/v1/audit/proof/inclusion?seq=3&size={}", cp.size),
        Some(&reader),
    );
    let p: Value = serde_json::from_slice(&p).unwrap();
    let hashes: Vec<merkle::Hash> = p["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    assert!(merkle::verify_inclusion(3, cp.size, &leaves[3], &hashes, &cp.root));
    // The earlier checkpoint (made at promotion) is consistent with the latest one.
    let (_, p) = get(
        &s,
        &format!("/api/v1/audit/proof/consistency?from=5&to={}", cp.size),
        Some(&reader),
    );
    let p: Value = serde_json::from_slice(&p).unwrap();
    let hashes: Vec<merkle::Hash> = p["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    assert!(merkle::verify_consistency(
        5,
        cp.size,
        &merkle::root(&leaves[..5]),
        &cp.root,
        &hashes
    ));

    // A restart keeps everything and prints no new admin key.
    drop(s);
    let (s2, again) = start_with(home.path(), options());
    assert!(again.is_none());
    assert_eq!(get(&s2, "/api/v1/models/fraud", Some(&reader)).0, 200);
    drop(s2);
    if let Some(url) = database_url {
        drop_schema(&url);
    }
}

/// Drops the schema a [`postgres_url`] created.
fn drop_schema(url: &str) {
    let schema = url.rsplit("search_path%3D").next().unwrap().to_owned();
    let base = url.split(['?', '&']).next().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = sqlx::AnyPool::connect(&base).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    });
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Pushes the files of `dir` as a new version of `model`; returns the version number.
fn push_dir(s: &Server, token: &str, model: &str, dir: &Path) -> u64 {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        let digest = hex::encode(Sha256::digest(&data));
        let (st, _) = call(
            "PUT",
            &format!("{}/api/v1/blobs/{digest}", s.base),
            Some(token),
            Some(data.clone()),
        );
        assert!(st == 201 || st == 200);
        files.push(json!({ "path": e.file_name().to_str().unwrap(), "digest": digest, "size": data.len() }));
    }
    let (st, v) = json_call(
        "POST",
        s,
        &format!("/api/v1/models/{model}/versions"),
        Some(token),
        json!({ "files": files }),
    );
    assert_eq!(st, 201, "{v}");
    v["version"].as_u64().unwrap()
}

fn upload(s: &Server, token: &str, model: &str, version: u64, bundle: &palisade_sign::Bundle) {
    let (st, body) = call(
        "POST",
        &format!("{}/api/v1/models/{model}/versions/{version}/attestations", s.base),
        Some(token),
        Some(bundle.to_json()),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn promotion_gates_require_signed_evidence() {
    use palisade_sign::model::{self, Signer};
    use palisade_sign::{attestation, Curve, SigningKey};

    let home = tempfile::tempdir().unwrap();
    let (s, admin) = start(home.path());
    let admin = admin.unwrap();
    let key = |subject: &str, roles: Value| {
        let (_, v) = json_call(
            "POST",
            &s,
            "/api/v1/keys",
            Some(&admin),
            json!({ "subject": subject, "roles": roles }),
        );
        v["token"].as_str().unwrap().to_owned()
    };
    let publisher = key("ci", json!(["publisher"]));
    let approver = key("rm", json!(["approver"]));
    let both = key("solo", json!(["publisher", "approver"]));
    json_call("POST", &s, "/api/v1/models", Some(&publisher), json!({ "name": "m" }));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weights.bin"), vec![9u8; 5000]).unwrap();
    std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
    let v1 = push_dir(&s, &publisher, "m", dir.path());

    let release = SigningKey::generate(Curve::P256);
    let stranger = SigningKey::generate(Curve::P256);
    let pem = release.verifying_key().to_pem().unwrap();
    let policy = json!({
        "signature": { "trusted_keys": [pem] },
        "scan": { "trusted_keys": [pem], "fail_on": "high" },
        "separation_of_duties": true,
    });
    assert_eq!(
        json_call(
            "PUT",
            &s,
            "/api/v1/models/m/gates/production",
            Some(&approver),
            policy.clone()
        )
        .0,
        403,
        "gates are set by admins"
    );
    assert_eq!(
        json_call(
            "PUT",
            &s,
            "/api/v1/models/m/gates/production",
            Some(&admin),
            json!({ "signature": { "trusted_keys": ["not a key"] } })
        )
        .0,
        400
    );
    assert_eq!(
        json_call("PUT", &s, "/api/v1/models/m/gates/production", Some(&admin), policy).0,
        200
    );

    let promote = |token: &str, v: u64| {
        json_call(
            "PUT",
            &s,
            "/api/v1/models/m/aliases/production",
            Some(token),
            json!({ "version": v }),
        )
    };
    let (st, body) = promote(&approver, v1);
    assert_eq!(st, 412);
    assert_eq!(body["unmet"].as_array().unwrap().len(), 2, "{body}");

    let manifest = palisade_sign::serialize::hash_model(dir.path(), &Default::default(), &|_| {}).unwrap();
    let signer = |k: &SigningKey| Signer {
        key: k.clone(),
        certificates: vec![],
    };
    // A signature by a key the gate does not trust does not count.
    upload(
        &s,
        &publisher,
        "m",
        v1,
        &model::sign_manifest(&manifest, &signer(&stranger)).unwrap(),
    );
    upload(
        &s,
        &publisher,
        "m",
        v1,
        &attestation::attest(
            &manifest,
            attestation::SCAN_PREDICATE_TYPE,
            json!({ "result": "findings", "highestSeverity": "critical" }),
            &signer(&release),
        )
        .unwrap(),
    );
    let (st, body) = promote(&approver, v1);
    assert_eq!(st, 412);
    let unmet: Vec<String> = serde_json::from_value(body["unmet"].clone()).unwrap();
    assert!(unmet.iter().any(|u| u.contains("model signature")), "{unmet:?}");
    assert!(
        unmet.iter().any(|u| u.contains("no finding at or above high")),
        "{unmet:?}"
    );

    upload(
        &s,
        &publisher,
        "m",
        v1,
        &model::sign_manifest(&manifest, &signer(&release)).unwrap(),
    );
    upload(
        &s,
        &publisher,
        "m",
        v1,
        &attestation::attest(
            &manifest,
            attestation::SCAN_PREDICATE_TYPE,
            json!({ "result": "findings", "highestSeverity": "low" }),
            &signer(&release),
        )
        .unwrap(),
    );
    assert_eq!(promote(&approver, v1).0, 200);

    // Separation of duties: whoever pushed a version may not promote it.
    std::fs::write(dir.path().join("weights.bin"), vec![8u8; 5000]).unwrap();
    let v2 = push_dir(&s, &both, "m", dir.path());
    let manifest = palisade_sign::serialize::hash_model(dir.path(), &Default::default(), &|_| {}).unwrap();
    upload(
        &s,
        &both,
        "m",
        v2,
        &model::sign_manifest(&manifest, &signer(&release)).unwrap(),
    );
    upload(
        &s,
        &both,
        "m",
        v2,
        &attestation::attest(
            &manifest,
            attestation::SCAN_PREDICATE_TYPE,
            json!({ "result": "clean", "highestSeverity": null }),
            &signer(&release),
        )
        .unwrap(),
    );
    let (st, body) = promote(&both, v2);
    assert_eq!(st, 412);
    assert_eq!(body["unmet"].as_array().unwrap().len(), 1, "{body}");
    assert!(body["unmet"][0]
        .as_str()
        .unwrap()
        .contains("approver other than the publisher"));
    assert_eq!(promote(&approver, v2).0, 200);
}

/// Eight clients push the same 3 MiB blob at once: every push succeeds, one encrypted copy
/// is kept, no temporary file is left, and a pull returns the exact bytes.
#[test]
fn concurrent_pushes_of_one_digest_deduplicate() {
    let home = tempfile::tempdir().unwrap();
    let (s, admin) = start(home.path());
    let admin = admin.unwrap();
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let digest = hex::encode(Sha256::digest(&data));
    let url = format!("{}/api/v1/blobs/{digest}", s.base);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| call("PUT", &url, Some(&admin), Some(data.clone())).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200 || *s == 201), "{statuses:?}");
    assert!(statuses.contains(&201), "{statuses:?}");
    let blobs: Vec<_> = walk(&home.path().join("store/blobs"));
    assert_eq!(blobs.len(), 1, "one stored copy: {blobs:?}");
    assert!(
        walk(&home.path().join("store/tmp")).is_empty(),
        "no temporary files left"
    );
    let (status, pulled) = call("GET", &url, Some(&admin), None);
    assert_eq!(status, 200);
    assert!(pulled == data, "pulled bytes differ");
}

/// The OpenAPI document is generated from the handlers that serve the routes, and every
/// route it lists except the explicit public ones refuses an anonymous call (401) — so a
/// new route cannot forget authentication unnoticed.
#[test]
fn openapi_lists_every_route_and_each_requires_credentials() {
    let home = tempfile::tempdir().unwrap();
    let (s, _) = start(home.path());
    let (status, body) = get(&s, "/openapi.json", None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc, serde_json::to_value(palisade_registry::server::openapi()).unwrap());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 19, "{} paths", paths.len());
    let public = palisade_registry::server::PUBLIC_ROUTES;
    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete"] {
            let Some(op) = item.get(method) else { continue };
            if public.contains(&(method, path.as_str())) {
                assert!(
                    op["security"] == json!([{}]) || op["security"] == json!([{ "bootstrap": [] }]),
                    "{method} {path} is public and says so: {}",
                    op["security"]
                );
                continue;
            }
            assert!(op.get("security").is_none(), "{method} {path} must not opt out of auth");
            let url = path.replace("{digest}", &"0".repeat(64)).replace(['{', '}'], "");
            let query = "?seq=0&size=1&from=0&to=1";
            let body = matches!(method, "put" | "post").then(|| b"{}".to_vec());
            let (status, _) = call(&method.to_uppercase(), &format!("{}{url}{query}", s.base), None, body);
            assert_eq!(status, 401, "{method} {path} answered an anonymous call");
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} operations checked");
    for (method, path) in public {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some() || *path == "/openapi.json",
            "public route {method} {path} is not in the document"
        );
    }
}

/// MLflow-shaped read routes: registered models, versions, aliases and search answer with
/// MLflow's field names and error codes, filtered by what the caller may read.
#[test]
fn mlflow_compatible_read_routes() {
    let home = tempfile::tempdir().unwrap();
    let (s, admin) = start(home.path());
    let admin = admin.unwrap();
    let get_json = |path: &str, token: &str| {
        let (st, b) = get(&s, path, Some(token));
        (st, serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null))
    };
    for name in ["fraud-detector", "churn"] {
        let (st, _) = json_call(
            "POST",
            &s,
            "/api/v1/models",
            Some(&admin),
            json!({ "name": name, "description": "d" }),
        );
        assert_eq!(st, 201);
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("model.bin"), b"weights v1").unwrap();
    assert_eq!(push_dir(&s, &admin, "fraud-detector", d.path()), 1);
    std::fs::write(d.path().join("model.bin"), b"weights v2").unwrap();
    assert_eq!(push_dir(&s, &admin, "fraud-detector", d.path()), 2);
    let (st, _) = json_call(
        "PUT",
        &s,
        "/api/v1/models/fraud-detector/aliases/champion",
        Some(&admin),
        json!({ "version": 1 }),
    );
    assert_eq!(st, 200);
    let (st, _) = json_call(
        "PUT",
        &s,
        "/api/v1/models/fraud-detector/versions/2/tags/validated",
        Some(&admin),
        json!({ "value": "yes" }),
    );
    assert_eq!(st, 204);
    let (_, key) = json_call(
        "POST",
        &s,
        "/api/v1/keys",
        Some(&admin),
        json!({ "subject": "ml", "roles": ["reader:fraud-detector"] }),
    );
    let scoped = key["token"].as_str().unwrap().to_owned();

    let (st, m) = get_json("/api/2.0/mlflow/registered-models/get?name=fraud-detector", &scoped);
    assert_eq!(st, 200, "{m}");
    let rm = &m["registered_model"];
    assert_eq!(rm["name"], "fraud-detector");
    assert_eq!(rm["aliases"], json!([{ "alias": "champion", "version": "1" }]));
    assert_eq!(rm["latest_versions"][0]["version"], "2");
    assert!(
        rm["creation_timestamp"].as_u64().unwrap() > 1_700_000_000_000,
        "milliseconds"
    );

    let (_, v) = get_json(
        "/api/2.0/mlflow/model-versions/get?name=fraud-detector&version=2",
        &scoped,
    );
    let mv = &v["model_version"];
    assert_eq!(mv["version"], "2");
    assert_eq!(mv["status"], "READY");
    assert_eq!(mv["tags"], json!([{ "key": "validated", "value": "yes" }]));
    assert_eq!(mv["source"], "palisade://fraud-detector/2");

    let (_, a) = get_json(
        "/api/2.0/mlflow/registered-models/alias?name=fraud-detector&alias=champion",
        &scoped,
    );
    assert_eq!(a["model_version"]["version"], "1");
    assert_eq!(a["model_version"]["aliases"], json!(["champion"]));

    let (_, list) = get_json("/api/2.0/mlflow/registered-models/search", &scoped);
    let names: Vec<&str> = list["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fraud-detector"], "a scoped reader sees only its model");
    let (_, list) = get_json(
        "/api/2.0/mlflow/registered-models/search?filter=name%20LIKE%20%27ch%25%27",
        &admin,
    );
    assert_eq!(list["registered_models"].as_array().unwrap().len(), 1);
    assert_eq!(list["registered_models"][0]["name"], "churn");
    let (_, vs) = get_json(
        "/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud-detector%27&max_results=1",
        &admin,
    );
    assert_eq!(vs["model_versions"].as_array().unwrap().len(), 1);
    assert_eq!(vs["next_page_token"], "1");
    let (_, vs2) = get_json(
        "/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud-detector%27&max_results=1&page_token=1",
        &admin,
    );
    assert_ne!(vs2["model_versions"][0]["version"], vs["model_versions"][0]["version"]);
    assert!(vs2.get("next_page_token").is_none());

    let (st, e) = get_json("/api/2.0/mlflow/registered-models/get?name=nope", &admin);
    assert_eq!((st, e["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));
    let (st, e) = get_json("/api/2.0/mlflow/registered-models/get?name=churn", &scoped);
    assert_eq!((st, e["error_code"].as_str()), (403, Some("PERMISSION_DENIED")));
    let (st, e) = get_json(
        "/api/2.0/mlflow/registered-models/search?filter=run_id%3D%27y%27",
        &admin,
    );
    assert_eq!((st, e["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")));
    let (st, _) = get(&s, "/api/2.0/mlflow/registered-models/search", None);
    assert_eq!(st, 401);
}

/// A BOM gate needs a CycloneDX document signed by a trusted key about exactly this version.
#[test]
fn bom_gate_requires_a_signed_cyclonedx_attestation() {
    use palisade_sign::model::Signer;
    use palisade_sign::{attestation, Curve, SigningKey};
    let home = tempfile::tempdir().unwrap();
    let (s, admin) = start(home.path());
    let admin = admin.unwrap();
    json_call("POST", &s, "/api/v1/models", Some(&admin), json!({ "name": "m" }));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weights.bin"), vec![3u8; 4000]).unwrap();
    let v1 = push_dir(&s, &admin, "m", dir.path());
    let release = SigningKey::generate(Curve::P256);
    let stranger = SigningKey::generate(Curve::P256);
    let pem = release.verifying_key().to_pem().unwrap();
    let (st, _) = json_call(
        "PUT",
        &s,
        "/api/v1/models/m/gates/production",
        Some(&admin),
        json!({ "bom": { "trusted_keys": [pem] } }),
    );
    assert_eq!(st, 200);
    let promote = || {
        json_call(
            "PUT",
            &s,
            "/api/v1/models/m/aliases/production",
            Some(&admin),
            json!({ "version": v1 }),
        )
    };
    let (st, body) = promote();
    assert_eq!(st, 412);
    assert!(body["unmet"][0].as_str().unwrap().contains("AI-BOM"), "{body}");

    let manifest = palisade_sign::serialize::hash_model(dir.path(), &Default::default(), &|_| {}).unwrap();
    let other = {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("weights.bin"), b"other").unwrap();
        palisade_sign::serialize::hash_model(d.path(), &Default::default(), &|_| {}).unwrap()
    };
    let signer = |k: &SigningKey| Signer {
        key: k.clone(),
        certificates: vec![],
    };
    let cdx = json!({ "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1 });
    // Not enough: a stranger's BOM, a BOM about another model, a non-CycloneDX predicate.
    for bundle in [
        attestation::attest(
            &manifest,
            attestation::BOM_PREDICATE_TYPE,
            cdx.clone(),
            &signer(&stranger),
        ),
        attestation::attest(&other, attestation::BOM_PREDICATE_TYPE, cdx.clone(), &signer(&release)),
        attestation::attest(
            &manifest,
            attestation::BOM_PREDICATE_TYPE,
            json!({ "spdxVersion": "SPDX-2.3" }),
            &signer(&release),
        ),
        attestation::attest(
            &manifest,
            attestation::SCAN_PREDICATE_TYPE,
            cdx.clone(),
            &signer(&release),
        ),
    ] {
        upload(&s, &admin, "m", v1, &bundle.unwrap());
        assert_eq!(promote().0, 412);
    }
    upload(
        &s,
        &admin,
        "m",
        v1,
        &attestation::attest(&manifest, attestation::BOM_PREDICATE_TYPE, cdx, &signer(&release)).unwrap(),
    );
    assert_eq!(promote().0, 200);
}

/// The S3 endpoint the object-store test uses: `PALISADE_TEST_S3`, default a local moto
/// server on 127.0.0.1:5055 (`.ci/run` starts one). Unreachable is a failure, not a skip.
fn s3_endpoint() -> String {
    let ep = std::env::var("PALISADE_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:5055".to_owned());
    let (st, _) = call("GET", &format!("{ep}/"), None, None);
    assert!(
        st == 200 || st == 403,
        "no S3-compatible server at {ep} (HTTP {st}): start one with `bash .ci/services.sh` or set PALISADE_TEST_S3"
    );
    ep
}

/// With `--blob-store s3://…` blobs are encrypted before upload (multipart), pulled back
/// verified, deduplicated, and a flipped byte in the stored object is refused and audited.
#[test]
fn s3_blob_store_end_to_end() {
    let ep = s3_endpoint();
    let bucket = format!("palisade-test-{}", std::process::id());
    let (st, body) = call("PUT", &format!("{ep}/{bucket}"), None, None);
    assert!(
        st == 200 || st == 409,
        "create bucket: {st} {}",
        String::from_utf8_lossy(&body)
    );
    let opts: Vec<(String, String)> = [
        ("aws_endpoint", ep.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let home = tempfile::tempdir().unwrap();
    let (s, admin) = start_with(
        home.path(),
        palisade_registry::server::Options {
            max_blob: 1 << 30,
            blob_store: Some(format!("s3://{bucket}/reg")),
            blob_store_options: opts.clone(),
            ..Default::default()
        },
    );
    let admin = admin.unwrap();
    // 20 MiB: three multipart parts.
    let data: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
        .collect();
    let digest = hex::encode(Sha256::digest(&data));
    let url = format!("{}/api/v1/blobs/{digest}", s.base);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| call("PUT", &url, Some(&admin), Some(data.clone())).0))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200 || *s == 201), "{statuses:?}");
    let (st, pulled) = call("GET", &url, Some(&admin), None);
    assert_eq!(st, 200);
    assert!(pulled == data, "pulled bytes differ");
    assert!(
        walk(&home.path().join("store/blobs")).is_empty(),
        "nothing stored locally"
    );
    assert!(walk(&home.path().join("store/tmp")).is_empty(), "staging files removed");

    // Inspect the bucket with object_store itself: one object, not plaintext.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut b = object_store::aws::AmazonS3Builder::new().with_bucket_name(&bucket);
    for (k, v) in &opts {
        b = b.with_config(k.parse().unwrap(), v);
    }
    let raw = b.build().unwrap();
    use futures_util::TryStreamExt as _;
    use object_store::{ObjectStore as _, ObjectStoreExt as _};
    let objects: Vec<_> = rt
        .block_on(
            raw.list(Some(&object_store::path::Path::from("reg/blobs")))
                .try_collect::<Vec<_>>(),
        )
        .unwrap();
    assert_eq!(objects.len(), 1, "one copy: {objects:?}");
    let key = objects[0].location.clone();
    assert!(key.to_string().contains(&digest), "{key}");
    let mut stored = rt
        .block_on(async { raw.get(&key).await.unwrap().bytes().await.unwrap() })
        .to_vec();
    assert!(
        !stored.windows(64).any(|w| data.windows(64).next() == Some(w)),
        "the object is not plaintext"
    );
    // Tamper: flip one byte in the middle of the stored object.
    let mid = stored.len() / 2;
    stored[mid] ^= 1;
    rt.block_on(raw.put(&key, stored.into())).unwrap();
    let (st, _) = call("GET", &url, Some(&admin), None);
    assert_eq!(st, 500, "a tampered object is refused");
    let (_, events) = get(&s, "/api/v1/audit/events", Some(&admin));
    let events: Vec<Event> = serde_json::from_slice(&events).unwrap();
    assert!(events.iter().any(|e| e.outcome == "tamper"), "and audited");
}

/// An upload that stops sending is cut off after the idle timeout: an error answer, no
/// blob, no temporary file left behind.
#[test]
fn a_stalled_upload_is_cut_off() {
    use std::io::{Read as _, Write as _};
    let home = tempfile::tempdir().unwrap();
    let (s, admin) = start_with(
        home.path(),
        palisade_registry::server::Options {
            max_blob: 1 << 30,
            body_idle: std::time::Duration::from_secs(1),
            ..Default::default()
        },
    );
    let admin = admin.unwrap();
    let host = s.base.trim_start_matches("http://").to_owned();
    let digest = "cd".repeat(32);
    let mut sock = std::net::TcpStream::connect(&host).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(
        sock,
        "PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {admin}\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    )
    .unwrap();
    sock.write_all(&[1u8; 1024]).unwrap();
    // Then nothing: the server must answer (with an error) on its own.
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&answer).to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "no answer in time"
    );
    let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!(status >= 400, "the stalled upload is refused: {head:?}");
    assert_eq!(get(&s, &format!("/api/v1/blobs/{digest}"), Some(&admin)).0, 404);
    assert!(
        walk(&home.path().join("store/tmp")).is_empty(),
        "no temporary file left"
    );
}
