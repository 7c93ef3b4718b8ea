//! `palisade serve` as a process: first start prints an admin key once, health answers
//! without credentials, the API does not, and SIGTERM shuts down cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{start, status, stop};

#[test]
fn serve_first_start_health_auth_and_clean_shutdown() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, addr, token) = start(&home.path().join("h"), true);
    let token = token.unwrap_or_else(|_| panic!("first start prints the admin key"));
    assert!(token.starts_with("pk_"));
    assert_eq!(status(&format!("{addr}/health"), None), 200);
    assert_eq!(status(&format!("{addr}/api/v1/models"), None), 401);
    assert_eq!(status(&format!("{addr}/api/v1/models"), Some(&token)), 200);
    assert_eq!(stop(&mut child), 0);
    // Second start: no new key, the old one still works.
    let (mut child, addr, again) = start(&home.path().join("h"), false);
    assert_eq!(status(&format!("{addr}/api/v1/models"), Some(&token)), 200);
    assert_eq!(stop(&mut child), 0);
    let printed = again.err().unwrap().join().unwrap();
    assert!(
        !printed.contains("PALISADE_TOKEN"),
        "a second start printed a key: {printed}"
    );
}

/// OIDC/JWT bearer tokens from the configured issuer are accepted beside API keys, with
/// their roles; an operator Cedar policy can forbid what a role would allow; both kinds of
/// refusal are audited.
#[test]
fn serve_accepts_jwt_and_operator_policies() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let dir = tempfile::tempdir().unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../palisade-auth/tests/fixtures");
    let key = EncodingKey::from_ec_pem(&std::fs::read(format!("{fixtures}/ec.key")).unwrap()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let policy = dir.path().join("ops.cedar");
    std::fs::write(
        &policy,
        r#"@id("no-shadow-models")
        forbid (principal, action == Palisade::Action::"create-model", resource == Palisade::Model::"shadow");"#,
    )
    .unwrap();
    let (mut child, addr, admin) = common::start_with(
        &dir.path().join("h"),
        true,
        &[
            "--jwt-issuer",
            "https://idp.test",
            "--jwt-audience",
            "palisade",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let admin = admin.unwrap_or_else(|_| panic!("first start prints the admin key"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |aud: &str, roles: &[&str]| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k1".into());
        let claims = serde_json::json!({
            "iss": "https://idp.test", "aud": aud, "sub": "bob", "exp": now + 300, "roles": roles,
        });
        jsonwebtoken::encode(&h, &claims, &key).unwrap()
    };
    let models = format!("{addr}/api/v1/models");
    let publisher = token("palisade", &["publisher"]);
    let reader = token("palisade", &["reader"]);
    let (s, _) = common::call(
        "POST",
        &models,
        Some(&publisher),
        Some(serde_json::json!({ "name": "fraud" })),
    );
    assert_eq!(s, 201, "a publisher token creates a model");
    assert_eq!(
        common::call("GET", &format!("{models}/fraud"), Some(&reader), None).0,
        200
    );
    let (s, body) = common::call("POST", &models, Some(&reader), Some(serde_json::json!({ "name": "x" })));
    assert_eq!(s, 403, "a reader may not create models: {body}");
    let (s, body) = common::call("GET", &models, Some(&token("another-app", &["admin"])), None);
    assert_eq!(s, 401, "a token for another audience: {body}");
    assert!(body["error"].as_str().unwrap().contains("audience"), "{body}");
    // The operator's forbid wins over the admin role.
    let (s, _) = common::call(
        "POST",
        &models,
        Some(&admin),
        Some(serde_json::json!({ "name": "shadow" })),
    );
    assert_eq!(s, 403);
    let (s, events) = common::call(
        "GET",
        &format!("{addr}/api/v1/audit/events?from=0&to=1000"),
        Some(&admin),
        None,
    );
    assert_eq!(s, 200);
    let events = events.as_array().unwrap().clone();
    let created = events
        .iter()
        .find(|e| e["action"] == "create-model" && e["outcome"] == "allowed")
        .unwrap();
    assert_eq!(created["actor"], "jwt:https://idp.test#bob");
    let forbidden = events
        .iter()
        .find(|e| e["target"] == "model/shadow" && e["outcome"] == "denied")
        .unwrap();
    assert_eq!(
        forbidden["detail"]["policies"][0],
        format!("{}:no-shadow-models", policy.display())
    );
    assert!(events
        .iter()
        .any(|e| e["outcome"] == "denied" && e["actor"] == "anonymous"));
    assert_eq!(stop(&mut child), 0);

    // A policy that does not validate stops the server from starting, with the reason.
    std::fs::write(
        &policy,
        r#"permit (principal, action == Palisade::Action::"pushh", resource);"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--listen", "127.0.0.1:0", "--home"])
        .arg(dir.path().join("h"))
        .args(["--policy", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pushh"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With a bootstrap token the first start prints no key; the token is exchanged once for
/// the admin key and is worthless afterwards (and never works as an API credential).
#[test]
fn bootstrap_token_mints_the_first_admin_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap");
    let secret = "b00tstrap-0123456789-abcdefghijklmnop";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let (mut child, addr, printed) = common::start_with(
        &dir.path().join("h"),
        false,
        &["--bootstrap-token-file", file.to_str().unwrap()],
    );
    let bootstrap = format!("{addr}/api/v1/bootstrap");
    assert_eq!(status(&format!("{addr}/api/v1/models"), Some(secret)), 401);
    assert_eq!(
        common::call("POST", &bootstrap, Some("wrong-token-wrong-token-wrong-token"), None).0,
        401
    );
    assert_eq!(common::call("POST", &bootstrap, None, None).0, 401);
    let (s, body) = common::call("POST", &bootstrap, Some(secret), None);
    assert_eq!(s, 201, "{body}");
    let admin = body["token"].as_str().unwrap().to_owned();
    assert_eq!(status(&format!("{addr}/api/v1/models"), Some(&admin)), 200);
    assert_eq!(common::call("POST", &bootstrap, Some(secret), None).0, 401, "only once");
    assert_eq!(stop(&mut child), 0);
    let out = printed.err().unwrap().join().unwrap();
    assert!(!out.contains("PALISADE_TOKEN"), "{out}");

    // A short bootstrap token is refused at start.
    std::fs::write(&file, "short").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--listen", "127.0.0.1:0", "--home"])
        .arg(dir.path().join("h2"))
        .args(["--bootstrap-token-file", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}
