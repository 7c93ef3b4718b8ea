//! Bearer credentials and JWKS documents are attacker-supplied: the authenticator must
//! refuse (never panic on) any Authorization header, and a JWKS parse must never panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use palisade_auth::{Authenticator, JwtConfig, JwtVerifier};

/// A real ES256 JWK (test key), so tokens reach signature checking.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn setup() -> &'static (tokio::runtime::Runtime, Authenticator, std::path::PathBuf) {
    static S: OnceLock<(tokio::runtime::Runtime, Authenticator, std::path::PathBuf)> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("palisade-fuzz-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jwks.json");
        std::fs::write(&path, JWKS).unwrap();
        let mut c = JwtConfig::new("https://idp.test", "palisade");
        c.jwks_file = Some(path);
        let v = rt.block_on(JwtVerifier::new(c)).unwrap();
        let auth = Authenticator::new(None, Some(Arc::new(v)));
        (rt, auth, dir.join("fuzzed.json"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, auth, scratch) = setup();
    // As an Authorization header value (API-key and JWT paths).
    assert!(
        rt.block_on(auth.authenticate(Some(data))).is_err(),
        "a fuzzed credential authenticated"
    );
    // As a JWKS document.
    if std::fs::write(scratch, data).is_ok() {
        let mut c = JwtConfig::new("https://idp.test", "palisade");
        c.jwks_file = Some(scratch.clone());
        let _ = rt.block_on(JwtVerifier::new(c));
    }
});
