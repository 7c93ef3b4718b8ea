//! Authentication and authorization on every gateway request, with a short-lived cache.
//!
//! The credential store (the registry's database) and the Cedar policy are asked once per
//! credential per `auth_cache_secs`; within that window a request costs a SHA-256 and a
//! map lookup. A cached JWT never outlives its own `exp`. Revoking a key through the
//! registry in the same process drops it from the cache at once ([`GatewayAuth::forget`]);
//! other replicas stop accepting it within the cache window (documented).
//! Failures are never cached, and nothing here logs a credential.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_auth::{AuthError, Authenticator, Decision, Method, Policy, Principal, Resource};
use sha2::{Digest as _, Sha256};

/// Most cached credentials; beyond it expired entries are dropped, then all.
const MAX_ENTRIES: usize = 50_000;

struct Entry {
    principal: Arc<Principal>,
    expires: Instant,
    decisions: HashMap<(&'static str, String), bool>,
}

pub struct GatewayAuth {
    authenticator: Authenticator,
    policy: Arc<Policy>,
    ttl: Duration,
    cache: parking_lot::Mutex<HashMap<[u8; 32], Entry>>,
}

/// The `exp` of a JWT that has already been verified (the payload is not trusted before).
fn verified_jwt_exp(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

impl GatewayAuth {
    pub fn new(authenticator: Authenticator, policy: Arc<Policy>, ttl: Duration) -> Self {
        GatewayAuth {
            authenticator,
            policy,
            ttl,
            cache: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The principal behind an `Authorization` header.
    pub async fn authenticate(&self, header: Option<&[u8]>) -> Result<Arc<Principal>, AuthError> {
        let Some(raw) = header else {
            return Err(AuthError::Missing);
        };
        self.authenticate_keyed(raw, Self::key(raw)).await
    }

    /// The cache key of a credential (what [`GatewayAuth::authorize`] takes).
    pub fn key(raw: &[u8]) -> [u8; 32] {
        Sha256::digest(raw).into()
    }

    /// [`GatewayAuth::authenticate`] with the credential's cache key already computed.
    pub async fn authenticate_keyed(&self, raw: &[u8], digest: [u8; 32]) -> Result<Arc<Principal>, AuthError> {
        let now = Instant::now();
        if !self.ttl.is_zero() {
            if let Some(e) = self.cache.lock().get(&digest) {
                if e.expires > now {
                    return Ok(e.principal.clone());
                }
            }
        }
        let p = Arc::new(self.authenticator.authenticate(Some(raw)).await?);
        if !self.ttl.is_zero() {
            let mut expires = now + self.ttl;
            if p.method == Method::Jwt {
                let exp = std::str::from_utf8(raw).ok().and_then(|h| {
                    palisade_auth::bearer(Some(h.as_bytes()), 1 << 20)
                        .ok()
                        .and_then(verified_jwt_exp)
                });
                let unix_now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                match exp {
                    Some(exp) if exp > unix_now => expires = expires.min(now + Duration::from_secs(exp - unix_now)),
                    _ => return Ok(p),
                }
            }
            let mut cache = self.cache.lock();
            if cache.len() >= MAX_ENTRIES {
                cache.retain(|_, e| e.expires > now);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(
                digest,
                Entry {
                    principal: p.clone(),
                    expires,
                    decisions: HashMap::new(),
                },
            );
        }
        Ok(p)
    }

    /// Whether `p` may take `action` on `model` (`None`: the gateway as a whole), with the
    /// deciding policies when it was asked now (`(cached)` otherwise). `credential` is the
    /// cache key of the credential `p` came from ([`GatewayAuth::key`]).
    pub fn authorize(
        &self,
        credential: Option<&[u8; 32]>,
        p: &Principal,
        action: &'static str,
        model: Option<&str>,
    ) -> Decision {
        let key = (action, model.unwrap_or("").to_owned());
        let digest = credential.copied();
        if let Some(d) = digest {
            if let Some(e) = self.cache.lock().get(&d) {
                if let Some(allowed) = e.decisions.get(&key) {
                    return Decision {
                        allowed: *allowed,
                        policies: vec!["(cached)".into()],
                        errors: Vec::new(),
                    };
                }
            }
        }
        let resource = model.map_or(Resource::Registry, Resource::Model);
        let decision = self.policy.decide(p, action, resource);
        if decision.errors.is_empty() {
            if let Some(d) = digest {
                if let Some(e) = self.cache.lock().get_mut(&d) {
                    if e.decisions.len() < 256 {
                        e.decisions.insert(key, decision.allowed);
                    }
                }
            }
        }
        decision
    }

    /// Drops every cached credential of the key or principal `id` (after a revocation).
    pub fn forget(&self, id: &str) {
        self.cache.lock().retain(|_, e| e.principal.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_auth::{ApiKeyStore, BoxFuture, StoredKey};

    struct Keys(
        parking_lot::Mutex<HashMap<String, StoredKey>>,
        std::sync::atomic::AtomicUsize,
    );

    impl ApiKeyStore for Keys {
        fn find<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredKey>, String>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let k = self.0.lock().get(id).cloned();
            Box::pin(async move { Ok(k) })
        }
    }

    fn setup(ttl: Duration) -> (Arc<Keys>, GatewayAuth, String) {
        let (id, digest, token) = palisade_auth::apikey::generate();
        let keys = Arc::new(Keys(
            parking_lot::Mutex::new(HashMap::from([(
                id.clone(),
                StoredKey {
                    subject: "svc".into(),
                    roles: vec!["invoker:iris".into()],
                    secret_sha256: digest,
                    revoked: false,
                },
            )])),
            Default::default(),
        ));
        let auth = GatewayAuth::new(
            Authenticator::new(Some(keys.clone()), None),
            Arc::new(Policy::builtin().unwrap()),
            ttl,
        );
        (keys, auth, format!("Bearer {token}"))
    }

    #[tokio::test]
    async fn a_credential_is_looked_up_once_per_window_and_forgotten_on_revocation() {
        let (keys, auth, header) = setup(Duration::from_secs(60));
        for _ in 0..5 {
            auth.authenticate(Some(header.as_bytes())).await.unwrap();
        }
        assert_eq!(keys.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        let p = auth.authenticate(Some(header.as_bytes())).await.unwrap();
        keys.0.lock().values_mut().for_each(|k| k.revoked = true);
        auth.forget(&p.id);
        assert!(matches!(
            auth.authenticate(Some(header.as_bytes())).await,
            Err(AuthError::InvalidApiKey)
        ));
    }

    #[tokio::test]
    async fn without_a_cache_every_request_asks_the_store() {
        let (keys, auth, header) = setup(Duration::ZERO);
        for _ in 0..3 {
            auth.authenticate(Some(header.as_bytes())).await.unwrap();
        }
        assert_eq!(keys.1.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn decisions_follow_scoped_roles_and_are_cached_per_model() {
        let (_, auth, header) = setup(Duration::from_secs(60));
        let h = Some(header.as_bytes());
        let p = auth.authenticate(h).await.unwrap();
        let k = GatewayAuth::key(header.as_bytes());
        let h = Some(&k);
        let first = auth.authorize(h, &p, "infer", Some("iris"));
        assert!(first.allowed && first.policies == ["builtin:infer"], "{first:?}");
        assert!(auth.authorize(h, &p, "infer", Some("iris")).allowed);
        assert!(!auth.authorize(h, &p, "infer", Some("other")).allowed);
        assert!(!auth.authorize(h, &p, "deploy", Some("iris")).allowed);
        assert!(!auth.authorize(h, &p, "read-metrics", None).allowed);
    }
}
