//! OIDC/JWT bearer tokens, verified against a JWKS (a file, or a URL fetched at start and
//! refreshed) with the issuer, audience, expiry and not-before checked and an algorithm
//! allowlist applied before any key is touched.
//!
//! Defences, each tested in `tests/jwt.rs`: `alg: none` and any algorithm outside the
//! allowlist are refused from the header alone; a key is used only for the algorithm family
//! it belongs to (no HS256 with an RSA public key as the "secret"), and only for the `alg`
//! its JWK names; a token whose `kid` the JWKS does not hold is refused (after at most one
//! rate-limited refresh); `exp`, `iss`, `aud` and `sub` are required.

use std::collections::HashSet;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::{Method, Principal};

/// `[auth.jwt]` in the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audience: Vec<String>,
    /// A JWKS document on disk.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (https, or http on a loopback address), fetched at start and refreshed.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Allowed `alg` values. Default: the asymmetric ones (RS*, PS*, ES256, ES384, EdDSA).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The claim that carries Palisade roles (an array of strings, or one space-separated
    /// string).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// How often a JWKS URL is fetched again, in seconds.
    #[serde(default = "default_refresh")]
    pub jwks_refresh_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    .map(String::from)
    .to_vec()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    3600
}

impl JwtConfig {
    pub fn new(issuer: &str, audience: &str) -> Self {
        JwtConfig {
            issuer: issuer.to_owned(),
            audience: vec![audience.to_owned()],
            jwks_file: None,
            jwks_url: None,
            algorithms: default_algorithms(),
            roles_claim: default_roles_claim(),
            leeway_secs: default_leeway(),
            jwks_refresh_secs: default_refresh(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("JWT configuration: {0}")]
    Config(String),
    #[error("JWKS: {0}")]
    Jwks(String),
    #[error("malformed token")]
    Malformed,
    #[error("algorithm `{0}` is not allowed")]
    Algorithm(String),
    #[error("no key in the JWKS for this token (kid {0})")]
    UnknownKey(String),
    #[error("the key does not fit the token's algorithm")]
    KeyMismatch,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("missing claim `{0}`")]
    MissingClaim(String),
    #[error("claim `{0}` has the wrong type")]
    ClaimType(String),
}

impl From<jsonwebtoken::errors::Error> for JwtError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => JwtError::Signature,
            K::ExpiredSignature => JwtError::Expired,
            K::ImmatureSignature => JwtError::NotYetValid,
            K::InvalidIssuer => JwtError::Issuer,
            K::InvalidAudience => JwtError::Audience,
            K::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
            K::InvalidClaimFormat(c) => JwtError::ClaimType(c.clone()),
            K::InvalidAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
                JwtError::Algorithm("?".into())
            }
            K::InvalidKeyFormat | K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidRsaKey(_) => {
                JwtError::KeyMismatch
            }
            _ => JwtError::Malformed,
        }
    }
}

struct Key {
    kid: Option<String>,
    /// The `alg` the JWK pins, if any.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

struct KeySet {
    keys: Vec<Key>,
    fetched: Instant,
}

/// Verifies bearer tokens. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    config: JwtConfig,
    allowed: Vec<Algorithm>,
    keys: RwLock<Arc<KeySet>>,
    /// Serialises refreshes and rate-limits them.
    refresh: tokio::sync::Mutex<Instant>,
}

/// Refetches triggered by an unknown `kid` happen at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Largest JWKS document read.
const MAX_JWKS: u64 = 1 << 20;
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;
/// Most roles taken from a token.
const MAX_ROLES: usize = 64;

impl JwtVerifier {
    /// Loads the JWKS (reading the file or fetching the URL) and checks the config.
    pub async fn new(config: JwtConfig) -> Result<Self, JwtError> {
        if config.issuer.is_empty() {
            return Err(JwtError::Config("`issuer` must not be empty".into()));
        }
        if config.audience.is_empty() || config.audience.iter().any(String::is_empty) {
            return Err(JwtError::Config(
                "`audience` must list at least one non-empty value".into(),
            ));
        }
        let mut allowed = Vec::new();
        for a in &config.algorithms {
            let alg = Algorithm::from_str(a).map_err(|_| JwtError::Config(format!("unknown algorithm `{a}`")))?;
            allowed.push(alg);
        }
        if allowed.is_empty() {
            return Err(JwtError::Config("`algorithms` must not be empty".into()));
        }
        match (&config.jwks_file, &config.jwks_url) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(JwtError::Config(
                    "give exactly one of `jwks_file` and `jwks_url`".into(),
                ))
            }
        }
        if let Some(url) = &config.jwks_url {
            check_url(url)?;
        }
        let keys = load(&config).await?;
        Ok(JwtVerifier {
            config,
            allowed,
            keys: RwLock::new(Arc::new(keys)),
            // The first unknown `kid` may refetch at once.
            refresh: tokio::sync::Mutex::new(Instant::now().checked_sub(MIN_REFETCH).unwrap_or_else(Instant::now)),
        })
    }

    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Fetches the JWKS URL again when it is stale (or, for an unknown `kid`, when the
    /// last fetch is older than [`MIN_REFETCH`]). Failures keep the old keys.
    async fn maybe_refresh(&self, unknown_kid: bool) {
        if self.config.jwks_url.is_none() {
            return;
        }
        let mut last = self.refresh.lock().await;
        let age = last.elapsed();
        let due = age >= Duration::from_secs(self.config.jwks_refresh_secs) || (unknown_kid && age >= MIN_REFETCH);
        if !due {
            return;
        }
        *last = Instant::now();
        match load(&self.config).await {
            Ok(set) => {
                tracing::info!(keys = set.keys.len(), "JWKS refreshed");
                match self.keys.write() {
                    Ok(mut k) => *k = Arc::new(set),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
                }
            }
            Err(e) => tracing::warn!("JWKS refresh failed, keeping the previous keys: {e}"),
        }
    }

    /// The principal a valid token names.
    pub async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        let (alg, kid) = self.header(token)?;
        if self.current().fetched.elapsed() >= Duration::from_secs(self.config.jwks_refresh_secs) {
            self.maybe_refresh(false).await;
        }
        let mut set = self.current();
        if let Some(k) = &kid {
            if !set.keys.iter().any(|key| key.kid.as_deref() == Some(k)) {
                self.maybe_refresh(true).await;
                set = self.current();
            }
        }
        let candidates: Vec<&Key> = set
            .keys
            .iter()
            .filter(|k| match &kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            })
            .filter(|k| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg))
            .collect();
        if candidates.is_empty() {
            return Err(match kid {
                Some(k) => JwtError::UnknownKey(k),
                None => JwtError::UnknownKey("none given and no key fits".into()),
            });
        }
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audience);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        let mut last = JwtError::Signature;
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation) {
                Ok(data) => return self.principal(&data.claims),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    /// The header's `alg` (checked against the allowlist before anything else is parsed)
    /// and `kid`.
    fn header(&self, token: &str) -> Result<(Algorithm, Option<String>), JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| JwtError::Malformed)?;
        let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
        let name = header.get("alg").and_then(|a| a.as_str()).ok_or(JwtError::Malformed)?;
        let alg = Algorithm::from_str(name).map_err(|_| JwtError::Algorithm(name.chars().take(16).collect()))?;
        if !self.allowed.contains(&alg) {
            return Err(JwtError::Algorithm(name.to_owned()));
        }
        let kid = match header.get("kid") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(JwtError::Malformed),
        };
        Ok((alg, kid))
    }

    fn principal(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Result<Principal, JwtError> {
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| JwtError::ClaimType("sub".into()))?;
        let roles = match claims.get(&self.config.roles_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| JwtError::ClaimType(self.config.roles_claim.clone()))?,
            Some(_) => return Err(JwtError::ClaimType(self.config.roles_claim.clone())),
        };
        if roles.len() > MAX_ROLES || roles.iter().any(|r| r.len() > 256) {
            return Err(JwtError::ClaimType(self.config.roles_claim.clone()));
        }
        Ok(Principal {
            id: format!("jwt:{}#{sub}", self.config.issuer),
            subject: sub.to_owned(),
            roles,
            method: Method::Jwt,
        })
    }
}

fn check_url(url: &str) -> Result<(), JwtError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(JwtError::Config(format!("`jwks_url` must be https: {url}")));
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(JwtError::Config(format!(
            "`jwks_url` must be https (plain http only on loopback): {url}"
        )))
    }
}

async fn load(config: &JwtConfig) -> Result<KeySet, JwtError> {
    let text = if let Some(path) = &config.jwks_file {
        let meta = std::fs::metadata(path).map_err(|e| JwtError::Jwks(format!("{}: {e}", path.display())))?;
        if meta.len() > MAX_JWKS {
            return Err(JwtError::Jwks(format!(
                "{} is larger than {MAX_JWKS} bytes",
                path.display()
            )));
        }
        std::fs::read_to_string(path).map_err(|e| JwtError::Jwks(format!("{}: {e}", path.display())))?
    } else if let Some(url) = &config.jwks_url {
        let url = url.clone();
        tokio::task::spawn_blocking(move || fetch(&url))
            .await
            .map_err(|e| JwtError::Jwks(e.to_string()))??
    } else {
        return Err(JwtError::Config("no JWKS source".into()));
    };
    parse_jwks(&text)
}

fn fetch(url: &str) -> Result<String, JwtError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .max_redirects(0)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .call()
        .map_err(|e| JwtError::Jwks(format!("{url}: {e}")))?;
    resp.body_mut()
        .with_config()
        .limit(MAX_JWKS)
        .read_to_string()
        .map_err(|e| JwtError::Jwks(format!("{url}: {e}")))
}

/// Parses a JWKS, keeping the signature keys it can use; one unusable key (an unknown
/// `kty`, an encryption key) does not spoil the others.
fn parse_jwks(text: &str) -> Result<KeySet, JwtError> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| JwtError::Jwks(format!("not JSON: {e}")))?;
    let list = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| JwtError::Jwks("no `keys` array".into()))?;
    let mut keys = Vec::new();
    for (i, raw) in list.iter().enumerate().take(MAX_KEYS) {
        let jwk: Jwk = match serde_json::from_value(raw.clone()) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(index = i, "JWKS key skipped: {e}");
                continue;
            }
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match &jwk.common.key_algorithm {
            None => None,
            Some(ka) => match Algorithm::from_str(&ka.to_string()) {
                Ok(a) => Some(a),
                Err(_) => continue,
            },
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) => keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            }),
            Err(e) => tracing::warn!(index = i, "JWKS key skipped: {e}"),
        }
    }
    if keys.is_empty() {
        return Err(JwtError::Jwks("no usable signature key".into()));
    }
    Ok(KeySet {
        keys,
        fetched: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_must_be_https_or_loopback() {
        for ok in [
            "https://idp.example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "ftp://x/",
            "file:///etc/jwks",
            "http://10.0.0.1/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unusable_jwks_keys_are_skipped_not_fatal() {
        let text = r#"{"keys":[
            {"kty":"XYZ","kid":"weird"},
            {"kty":"EC","use":"enc","crv":"P-256","kid":"enc","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","kid":"sig","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let set = parse_jwks(text).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some("sig"));
        assert!(parse_jwks(r#"{"keys":[]}"#).is_err());
        assert!(parse_jwks("[]").is_err());
    }
}
