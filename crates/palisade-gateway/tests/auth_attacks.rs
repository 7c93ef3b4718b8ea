//! The gateway's authentication attack table, through its router with both API keys and
//! OIDC/JWT accepted: every forged, stale, misdirected, revoked, missing, oversized or
//! wrongly scoped credential is refused with the right status (401, or 403 for a valid
//! credential without the right), and audited. Keys are the `palisade-auth` fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_auth::{ApiKeyStore, Authenticator, BoxFuture, JwtConfig, JwtVerifier, Policy, StoredKey};
use palisade_gateway::audit::MemorySink;
use palisade_gateway::{Gateway, Parts};
use serde_json::{json, Value};
use tower::ServiceExt as _;

const ISS: &str = "https://idp.example.test";
const AUD: &str = "palisade-gateway";

fn key_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../palisade-auth/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn claims(roles: &[&str]) -> Value {
    json!({ "iss": ISS, "aud": AUD, "sub": "svc-a", "exp": now() + 600, "iat": now(), "roles": roles })
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

/// A token with any header, HMAC-signed with `secret` through jsonwebtoken's signer.
fn hs256_raw(header: Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
    format!("{input}.{sig}")
}

#[derive(Default)]
struct Keys(parking_lot::Mutex<std::collections::HashMap<String, StoredKey>>);

impl ApiKeyStore for Keys {
    fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredKey>, String>> {
        let k = self.0.lock().get(id).cloned();
        Box::pin(async move { Ok(k) })
    }
}

impl Keys {
    fn add(&self, roles: &[&str], revoked: bool) -> String {
        let (id, digest, token) = palisade_auth::apikey::generate();
        self.0.lock().insert(
            id,
            StoredKey {
                subject: "k".into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                secret_sha256: digest,
                revoked,
            },
        );
        token
    }
}

async fn call(app: &axum::Router, authorization: Option<String>) -> (u16, Value) {
    let mut req = Request::post("/v2/models/iris/infer").header("content-type", "application/json");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let body =
        json!({ "inputs": [{ "name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2] }] });
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn attack_table() {
    let dir = tempfile::tempdir().unwrap();
    let ec = EncodingKey::from_ec_pem(&key_fixture("ec.key")).unwrap();
    let ec_other = EncodingKey::from_ec_pem(&key_fixture("ec-other.key")).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&key_fixture("rsa.key")).unwrap();
    let mut jwks = Vec::new();
    for (key, alg, kid) in [(&ec, Algorithm::ES256, "ec"), (&rsa, Algorithm::RS256, "rsa")] {
        let mut j = Jwk::from_encoding_key(key, alg).unwrap();
        j.common.key_id = Some(kid.into());
        jwks.push(j);
    }
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&JwkSet { keys: jwks }).unwrap()).unwrap();
    let mut config = JwtConfig::new(ISS, AUD);
    config.jwks_file = Some(path);
    let jwt = Arc::new(JwtVerifier::new(config).await.unwrap());

    let keys = Arc::new(Keys::default());
    let invoker_key = keys.add(&["invoker:iris"], false);
    let revoked_key = keys.add(&["invoker"], true);
    let other_model_key = keys.add(&["invoker:chat"], false);
    let audit = Arc::new(MemorySink::default());
    let source = Arc::new(Fixture);
    let gw = Gateway::new(
        toml::from_str("model_refresh_secs = 0\n[[models]]\nname = \"iris\"\nkind = \"onnx\"\n[[models.backends]]\nname = \"b\"\nversion = 1\n").unwrap(),
        Parts {
            authenticator: Authenticator::new(Some(keys.clone()), Some(jwt)),
            policy: Arc::new(Policy::builtin().unwrap()),
            source: Some(source),
            audit: audit.clone(),
            guard: None,
        },
    )
    .unwrap();
    gw.start().await;
    let app = palisade_gateway::router(gw.clone());

    let good = claims(&["invoker:iris"]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let rsa_public_pem = key_fixture("rsa.pub");
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("valid API key", bearer(&invoker_key), 200),
        (
            "valid JWT (ES256)",
            bearer(&sign(Algorithm::ES256, "ec", &good, &ec)),
            200,
        ),
        (
            "valid JWT (RS256)",
            bearer(&sign(Algorithm::RS256, "rsa", &good, &rsa)),
            200,
        ),
        ("no credential", None, 401),
        ("not a bearer", Some(format!("Basic {}", b64(b"admin:admin"))), 401),
        ("empty bearer", Some("Bearer ".into()), 401),
        (
            "alg none",
            bearer(&format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(good.to_string().as_bytes())
            )),
            401,
        ),
        (
            "HS256 keyed with the RSA public key",
            bearer(&hs256_raw(
                json!({"alg": "HS256", "kid": "rsa"}),
                &good,
                &rsa_public_pem,
            )),
            401,
        ),
        (
            "RS256 header on an EC key id",
            bearer(&sign(Algorithm::RS256, "ec", &good, &rsa)),
            401,
        ),
        (
            "signed by a key not in the JWKS",
            bearer(&sign(Algorithm::ES256, "ec", &good, &ec_other)),
            401,
        ),
        (
            "expired",
            bearer(&sign(
                Algorithm::ES256,
                "ec",
                &with(&|c| c["exp"] = json!(now() - 3600)),
                &ec,
            )),
            401,
        ),
        (
            "not yet valid",
            bearer(&sign(
                Algorithm::ES256,
                "ec",
                &with(&|c| c["nbf"] = json!(now() + 3600)),
                &ec,
            )),
            401,
        ),
        (
            "wrong audience",
            bearer(&sign(
                Algorithm::ES256,
                "ec",
                &with(&|c| c["aud"] = json!("registry")),
                &ec,
            )),
            401,
        ),
        (
            "wrong issuer",
            bearer(&sign(
                Algorithm::ES256,
                "ec",
                &with(&|c| c["iss"] = json!("https://evil.test")),
                &ec,
            )),
            401,
        ),
        (
            "edited payload",
            {
                let t = sign(Algorithm::ES256, "ec", &good, &ec);
                let parts: Vec<&str> = t.split('.').collect();
                let forged = b64(claims(&["admin"]).to_string().as_bytes());
                bearer(&format!("{}.{forged}.{}", parts[0], parts[2]))
            },
            401,
        ),
        ("revoked API key", bearer(&revoked_key), 401),
        (
            "API key with a wrong secret",
            bearer(&format!(
                "{}.{}",
                invoker_key.split('.').next().unwrap(),
                "0".repeat(64)
            )),
            401,
        ),
        ("oversized token", bearer(&"a".repeat(64 << 10)), 401),
        ("API key for another model", bearer(&other_model_key), 403),
        (
            "JWT for another model",
            bearer(&sign(Algorithm::ES256, "ec", &claims(&["invoker:chat"]), &ec)),
            403,
        ),
        (
            "JWT without roles",
            bearer(&sign(
                Algorithm::ES256,
                "ec",
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("roles");
                }),
                &ec,
            )),
            403,
        ),
    ];
    for (what, auth, want) in &cases {
        let (status, body) = call(&app, auth.clone()).await;
        assert_eq!(status, *want, "{what}: {body}");
        if *want != 200 {
            assert!(body["error"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
            if let Some(credential) = auth
                .as_deref()
                .map(|a| a.trim_start_matches("Bearer "))
                .filter(|c| c.len() > 16)
            {
                assert!(
                    !body.to_string().contains(credential),
                    "{what}: the credential was echoed"
                );
            }
        }
    }
    gw.auditor.flush().await;
    let refusals = audit.0.lock().iter().filter(|e| e.outcome == "denied").count();
    assert_eq!(refusals, cases.iter().filter(|c| c.2 != 200).count());
}

/// Version 1 of `iris` is the committed fixture.
struct Fixture;

impl palisade_gateway::source::ModelSource for Fixture {
    fn resolve<'a>(
        &'a self,
        _model: &'a str,
        _selector: &'a palisade_gateway::source::Selector,
    ) -> BoxFuture<'a, Result<palisade_gateway::source::SourceVersion, String>> {
        Box::pin(async {
            Ok(palisade_gateway::source::SourceVersion {
                version: 1,
                digest: "sha256:00".into(),
                files: vec![("model.onnx".into(), 1)],
            })
        })
    }
    fn read<'a>(&'a self, _: &'a str, _: u64, _: &'a str, _: u64) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async {
            Ok(std::fs::read(format!("{}/tests/fixtures/iris_mlp.onnx", env!("CARGO_MANIFEST_DIR"))).unwrap())
        })
    }
}
