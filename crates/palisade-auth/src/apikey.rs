//! Palisade API keys: `pk_<16 hex id>.<64 hex secret>`. The id is public (it names the
//! key in audit events and revocations); only the SHA-256 of the secret is stored, and the
//! comparison is constant-time.

use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};

use crate::BoxFuture;

pub const PREFIX: &str = "pk_";

/// What a store holds for one key.
#[derive(Clone, Debug)]
pub struct StoredKey {
    pub subject: String,
    pub roles: Vec<String>,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub revoked: bool,
}

/// Where API keys live (the registry's database; a static file for a lone gateway).
pub trait ApiKeyStore: Send + Sync {
    /// The key with this id, if any. An `Err` is a store failure (the request is refused).
    fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredKey>, String>>;
}

/// A fresh key: `(id, secret_sha256, token)`. The token is shown once.
pub fn generate() -> (String, String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut secret);
    let id = format!("{PREFIX}{}", hex::encode(id));
    let secret = hex::encode(secret);
    let token = format!("{id}.{secret}");
    (id, secret_digest(&secret), token)
}

/// The stored form of a secret.
pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits a token into `(id, secret)` when it has the API-key shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let well_formed = id.len() == PREFIX.len() + 16
        && id.starts_with(PREFIX)
        && id[PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
        && secret.len() == 64
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((id, secret))
}

/// Constant-time comparison of the stored digest with the digest of `secret`.
pub fn secret_matches(stored_sha256: &str, secret: &str) -> bool {
    let given = secret_digest(secret);
    stored_sha256.len() == given.len()
        && stored_sha256
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_match() {
        let (id, digest, token) = generate();
        let (pid, secret) = parse(&token).unwrap();
        assert_eq!(pid, id);
        assert!(secret_matches(&digest, secret));
        assert!(!secret_matches(&digest, &"0".repeat(64)));
        let (id2, _, _) = generate();
        assert_ne!(id, id2, "ids are random");
    }

    #[test]
    fn malformed_tokens_are_not_api_keys() {
        for t in [
            "pk_0123456789abcdef",
            "pk_0123456789abcde.".to_string().as_str(),
            &format!("pk_0123456789abcdeg.{}", "a".repeat(64)),
            &format!("pk_0123456789abcdef.{}", "a".repeat(63)),
            &format!("xx_0123456789abcdef.{}", "a".repeat(64)),
            &format!("pk_0123456789abcdef.{}z", "a".repeat(63)),
            "eyJhbGciOiJSUzI1NiJ9.e30.sig",
        ] {
            assert!(parse(t).is_none(), "{t}");
        }
        assert!(parse(&format!("pk_0123456789abcdef.{}", "a".repeat(64))).is_some());
    }
}
