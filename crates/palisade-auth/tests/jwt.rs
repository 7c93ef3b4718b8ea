//! The JWT attack table: every forged, stale or misdirected token is refused with its own
//! error, and a JWKS served over HTTP is refreshed for new key ids (rate-limited).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use palisade_auth::{AuthError, Authenticator, JwtConfig, JwtError, JwtVerifier, Method};
use serde_json::{json, Value};

const ISS: &str = "https://idp.example.test";
const AUD: &str = "palisade";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec.key")).unwrap()
}
fn ec_other() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec-other.key")).unwrap()
}
fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("rsa.key")).unwrap()
}
fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(&fixture("ed.key")).unwrap()
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut j = Jwk::from_encoding_key(key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    j
}

fn jwks(keys: Vec<Jwk>) -> String {
    serde_json::to_string(&JwkSet { keys }).unwrap()
}

fn claims() -> Value {
    json!({ "iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600, "iat": now(), "roles": ["publisher", "reader:fraud"] })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with an arbitrary header, signed with HMAC-SHA256 over `secret`.
fn hs256_raw(header: Value, claims: &Value, secret: &[u8]) -> String {
    use hmac_free::hmac_sha256;
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!(
        "{signing_input}.{}",
        b64(&hmac_sha256(secret, signing_input.as_bytes()))
    )
}

/// HMAC-SHA256 through jsonwebtoken's own HS256 signer (no hand-rolled crypto).
mod hmac_free {
    pub fn hmac_sha256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
        // jsonwebtoken signs `header.payload`; sign the message as if it were that input by
        // asking for a JWS over it and taking the signature part.
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        let sig = jsonwebtoken::crypto::sign(msg, &key, jsonwebtoken::Algorithm::HS256).unwrap();
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap()
    }
}

async fn verifier(dir: &tempfile::TempDir, keys: Vec<Jwk>, tweak: impl FnOnce(&mut JwtConfig)) -> JwtVerifier {
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(keys)).unwrap();
    let mut config = JwtConfig::new(ISS, AUD);
    config.jwks_file = Some(path);
    tweak(&mut config);
    JwtVerifier::new(config).await.unwrap()
}

fn standard_keys() -> Vec<Jwk> {
    vec![
        jwk(&ec(), Algorithm::ES256, "ec"),
        jwk(&rsa(), Algorithm::RS256, "rsa"),
        jwk(&ed(), Algorithm::EdDSA, "ed"),
    ]
}

#[tokio::test]
async fn valid_tokens_name_their_subject_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(&dir, standard_keys(), |_| {}).await;
    for (alg, kid, key) in [
        (Algorithm::ES256, "ec", ec()),
        (Algorithm::RS256, "rsa", rsa()),
        (Algorithm::EdDSA, "ed", ed()),
    ] {
        let p = v.verify(&sign(alg, Some(kid), &claims(), &key)).await.unwrap();
        assert_eq!(p.subject, "alice");
        assert_eq!(p.id, format!("jwt:{ISS}#alice"));
        assert_eq!(p.roles, ["publisher", "reader:fraud"]);
        assert_eq!(p.method, Method::Jwt);
    }
    // Roles as one space-separated string (an OAuth `scope`-style claim).
    let mut c = claims();
    c["roles"] = json!("reader approver");
    let p = v.verify(&sign(Algorithm::ES256, Some("ec"), &c, &ec())).await.unwrap();
    assert_eq!(p.roles, ["reader", "approver"]);
    // No roles claim: authenticated, but with no roles (deny by default downstream).
    c.as_object_mut().unwrap().remove("roles");
    let p = v.verify(&sign(Algorithm::ES256, Some("ec"), &c, &ec())).await.unwrap();
    assert!(p.roles.is_empty());
}

#[tokio::test]
async fn attack_table() {
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(&dir, standard_keys(), |_| {}).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        c
    };
    let rsa_public_pem = fixture("rsa.pub");
    type Case = (&'static str, String, fn(&JwtError) -> bool);
    let cases: Vec<Case> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(claims().to_string().as_bytes())
            ),
            |e| matches!(e, JwtError::Algorithm(a) if a == "none"),
        ),
        (
            "alg None spelled oddly",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"nOnE"}"#),
                b64(claims().to_string().as_bytes())
            ),
            |e| matches!(e, JwtError::Algorithm(_)),
        ),
        (
            "HS256 keyed with the RSA public key (key confusion)",
            hs256_raw(json!({"alg": "HS256", "kid": "rsa"}), &claims(), &rsa_public_pem),
            |e| matches!(e, JwtError::Algorithm(a) if a == "HS256"),
        ),
        (
            "expired",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| c["exp"] = json!(now() - 3600)),
                &ec(),
            ),
            |e| matches!(e, JwtError::Expired),
        ),
        (
            "not yet valid",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| c["nbf"] = json!(now() + 3600)),
                &ec(),
            ),
            |e| matches!(e, JwtError::NotYetValid),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| c["aud"] = json!("another-service")),
                &ec(),
            ),
            |e| matches!(e, JwtError::Audience),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| c["iss"] = json!("https://evil.test")),
                &ec(),
            ),
            |e| matches!(e, JwtError::Issuer),
        ),
        (
            "no exp",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                &ec(),
            ),
            |e| matches!(e, JwtError::MissingClaim(c) if c == "exp"),
        ),
        (
            "no sub",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
                &ec(),
            ),
            |e| matches!(e, JwtError::MissingClaim(c) if c == "sub"),
        ),
        (
            "unknown kid",
            sign(Algorithm::ES256, Some("retired"), &claims(), &ec()),
            |e| matches!(e, JwtError::UnknownKey(k) if k == "retired"),
        ),
        (
            "signed by another key under a known kid",
            sign(Algorithm::ES256, Some("ec"), &claims(), &ec_other()),
            |e| matches!(e, JwtError::Signature),
        ),
        (
            "EC key used under an RSA kid",
            sign(Algorithm::ES256, Some("rsa"), &claims(), &ec()),
            |e| matches!(e, JwtError::UnknownKey(_)),
        ),
        (
            "roles claim of the wrong type",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &with(&|c| c["roles"] = json!({"admin": true})),
                &ec(),
            ),
            |e| matches!(e, JwtError::ClaimType(c) if c == "roles"),
        ),
        ("not a JWT", "abc.def".into(), |e| matches!(e, JwtError::Malformed)),
        ("four parts", "a.b.c.d".into(), |e| matches!(e, JwtError::Malformed)),
    ];
    for (name, token, expected) in &cases {
        match v.verify(token).await {
            Ok(p) => panic!("{name}: accepted as {p:?}"),
            Err(e) => assert!(expected(&e), "{name}: wrong error {e:?}"),
        }
    }
    // A payload edited after signing.
    let good = sign(Algorithm::ES256, Some("ec"), &claims(), &ec());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(with(&|c| c["roles"] = json!(["admin"])).to_string().as_bytes()),
        parts[2]
    );
    assert!(matches!(v.verify(&forged).await, Err(JwtError::Signature)));
}

#[tokio::test]
async fn hs256_allowed_still_cannot_use_an_rsa_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let v = verifier(&dir, standard_keys(), |c| {
        c.algorithms = vec!["HS256".into(), "RS256".into()];
    })
    .await;
    let token = hs256_raw(json!({"alg": "HS256", "kid": "rsa"}), &claims(), &fixture("rsa.pub"));
    assert!(matches!(v.verify(&token).await, Err(JwtError::UnknownKey(_))));
    // And a JWK that pins its alg is used for nothing else.
    let mut pinned = jwk(&ec(), Algorithm::ES256, "pinned");
    pinned.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::ES384);
    let v = verifier(&dir, vec![pinned], |_| {}).await;
    let token = sign(Algorithm::ES256, Some("pinned"), &claims(), &ec());
    assert!(matches!(v.verify(&token).await, Err(JwtError::UnknownKey(_))));
}

#[tokio::test]
async fn authenticator_limits_and_routes_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let v = Arc::new(verifier(&dir, standard_keys(), |_| {}).await);
    let auth = Authenticator::new(None, Some(v));
    let token = sign(Algorithm::ES256, Some("ec"), &claims(), &ec());
    let header = format!("Bearer {token}");
    assert_eq!(
        auth.authenticate(Some(header.as_bytes())).await.unwrap().subject,
        "alice"
    );
    let header = format!("bearer {token}");
    assert!(
        auth.authenticate(Some(header.as_bytes())).await.is_ok(),
        "scheme is case-insensitive"
    );
    let mut big = claims();
    big["padding"] = json!("x".repeat(10_000));
    let header = format!("Bearer {}", sign(Algorithm::ES256, Some("ec"), &big, &ec()));
    assert!(matches!(
        auth.authenticate(Some(header.as_bytes())).await,
        Err(AuthError::TooLarge(_))
    ));
    assert!(matches!(auth.authenticate(None).await, Err(AuthError::Missing)));
    assert!(matches!(
        auth.authenticate(Some(b"Basic dXNlcjpwdw==")).await,
        Err(AuthError::Malformed)
    ));
    assert!(matches!(
        auth.authenticate(Some(b"Bearer ")).await,
        Err(AuthError::Malformed)
    ));
    let api_key = format!("Bearer pk_0123456789abcdef.{}", "a".repeat(64));
    assert!(matches!(
        auth.authenticate(Some(api_key.as_bytes())).await,
        Err(AuthError::InvalidApiKey)
    ));
    // Without a JWT verifier, tokens are refused with a clear reason.
    let no_jwt = Authenticator::new(None, None);
    let header = format!("Bearer {token}");
    assert!(matches!(
        no_jwt.authenticate(Some(header.as_bytes())).await,
        Err(AuthError::JwtNotConfigured)
    ));
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(standard_keys())).unwrap();
    let base = || {
        let mut c = JwtConfig::new(ISS, AUD);
        c.jwks_file = Some(path.clone());
        c
    };
    let cases: Vec<(&str, JwtConfig)> = vec![
        (
            "empty issuer",
            JwtConfig {
                issuer: String::new(),
                ..base()
            },
        ),
        (
            "no audience",
            JwtConfig {
                audience: vec![],
                ..base()
            },
        ),
        (
            "unknown algorithm",
            JwtConfig {
                algorithms: vec!["none".into()],
                ..base()
            },
        ),
        (
            "no algorithms",
            JwtConfig {
                algorithms: vec![],
                ..base()
            },
        ),
        (
            "no JWKS",
            JwtConfig {
                jwks_file: None,
                ..base()
            },
        ),
        (
            "both JWKS sources",
            JwtConfig {
                jwks_url: Some("https://x/jwks".into()),
                ..base()
            },
        ),
        (
            "plain http to a remote JWKS",
            JwtConfig {
                jwks_file: None,
                jwks_url: Some("http://idp.example.test/jwks".into()),
                ..base()
            },
        ),
        (
            "missing file",
            JwtConfig {
                jwks_file: Some(dir.path().join("nope.json")),
                ..base()
            },
        ),
    ];
    for (name, config) in cases {
        assert!(JwtVerifier::new(config).await.is_err(), "{name}");
    }
}

#[tokio::test]
async fn jwks_url_is_refetched_for_a_new_kid_at_most_every_30s() {
    let served = Arc::new(Mutex::new(jwks(vec![jwk(&ec(), Algorithm::ES256, "k1")])));
    let state = served.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let s = state.clone();
            async move { s.lock().unwrap().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut config = JwtConfig::new(ISS, AUD);
    config.jwks_url = Some(format!("http://{addr}/jwks"));
    let v = JwtVerifier::new(config).await.unwrap();
    assert!(v
        .verify(&sign(Algorithm::ES256, Some("k1"), &claims(), &ec()))
        .await
        .is_ok());

    // The identity provider rotates in a new key: the first token naming it triggers a fetch.
    *served.lock().unwrap() = jwks(vec![
        jwk(&ec(), Algorithm::ES256, "k1"),
        jwk(&ec_other(), Algorithm::ES256, "k2"),
    ]);
    assert!(v
        .verify(&sign(Algorithm::ES256, Some("k2"), &claims(), &ec_other()))
        .await
        .is_ok());

    // Another unknown kid right after: no second fetch within 30 s, so it is refused even
    // though the server now has it (an attacker cannot make us hammer the IdP).
    *served.lock().unwrap() = jwks(vec![jwk(&rsa(), Algorithm::RS256, "k3")]);
    assert!(matches!(
        v.verify(&sign(Algorithm::RS256, Some("k3"), &claims(), &rsa())).await,
        Err(JwtError::UnknownKey(_))
    ));
}
