//! Authentication and authorization shared by Palisade's servers (the registry and the
//! gateway).
//!
//! - [`Authenticator`] turns an `Authorization: Bearer …` header into a [`Principal`]:
//!   Palisade API keys (`pk_<id>.<secret>`, looked up in an [`ApiKeyStore`], secrets
//!   stored as SHA-256) or OIDC/JWT bearer tokens checked against a JWKS ([`jwt`]).
//! - [`policy::Policy`] decides, deny by default, whether a principal may take an action
//!   on a resource: Cedar policies, the built-in role policies plus the operator's own.
//!
//! Nothing here knows about HTTP frameworks; servers pass the header value in and map
//! [`AuthError`] to their status codes.

pub mod apikey;
pub mod jwt;
pub mod policy;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use apikey::{ApiKeyStore, StoredKey};
pub use jwt::{JwtConfig, JwtError, JwtVerifier};
pub use policy::{Decision, Policy, PolicyError, Resource};

/// How a principal proved who it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    ApiKey,
    Jwt,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The API key id (`pk_…`) or `jwt:<issuer>#<subject>`: what audit events name.
    pub id: String,
    /// The human or workload behind it (the key's subject, the token's `sub`).
    pub subject: String,
    /// Roles, global (`publisher`) or scoped to one model (`publisher:fraud-model`).
    pub roles: Vec<String>,
    pub method: Method,
}

/// Why a request is not authenticated. Every variant maps to 401; the message is safe to
/// show to the client (it never contains the token).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: Authorization: Bearer <API key or token>")]
    Missing,
    #[error("the Authorization header is not `Bearer <credential>`")]
    Malformed,
    #[error("the credential is larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid or revoked API key")]
    InvalidApiKey,
    #[error("bearer tokens (JWT) are not accepted by this server")]
    JwtNotConfigured,
    #[error("invalid token: {0}")]
    Jwt(#[from] JwtError),
    /// The credential store failed; the request is refused (fail closed).
    #[error("the credential store is unavailable")]
    Store(String),
}

impl AuthError {
    /// Whether this is a server-side failure rather than the client's.
    pub fn is_internal(&self) -> bool {
        matches!(self, AuthError::Store(_))
    }
}

/// A boxed future, for the object-safe store trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Largest credential accepted (API key or JWT), in bytes.
pub const DEFAULT_MAX_CREDENTIAL: usize = 8 * 1024;

/// The credential of an `Authorization: Bearer …` header value (scheme case-insensitive),
/// refused when absent, malformed or longer than `max` bytes.
pub fn bearer(authorization: Option<&[u8]>, max: usize) -> Result<&str, AuthError> {
    let raw = authorization.ok_or(AuthError::Missing)?;
    if raw.len() > max + "Bearer ".len() {
        return Err(AuthError::TooLarge(max));
    }
    let value = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed)?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(credential)
}

/// Authenticates requests from their `Authorization` header.
#[derive(Clone)]
pub struct Authenticator {
    keys: Option<Arc<dyn ApiKeyStore>>,
    jwt: Option<Arc<JwtVerifier>>,
    max_credential: usize,
}

impl Authenticator {
    pub fn new(keys: Option<Arc<dyn ApiKeyStore>>, jwt: Option<Arc<JwtVerifier>>) -> Self {
        Authenticator {
            keys,
            jwt,
            max_credential: DEFAULT_MAX_CREDENTIAL,
        }
    }

    /// The principal behind an `Authorization` header value (`None`: no header).
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Principal, AuthError> {
        let credential = bearer(authorization, self.max_credential)?;
        if let Some((id, secret)) = apikey::parse(credential) {
            let Some(store) = &self.keys else {
                return Err(AuthError::InvalidApiKey);
            };
            let stored = store.find(id).await.map_err(AuthError::Store)?;
            return match stored {
                Some(k) if !k.revoked && apikey::secret_matches(&k.secret_sha256, secret) => Ok(Principal {
                    id: id.to_owned(),
                    subject: k.subject,
                    roles: k.roles,
                    method: Method::ApiKey,
                }),
                _ => Err(AuthError::InvalidApiKey),
            };
        }
        if credential.starts_with(apikey::PREFIX) {
            return Err(AuthError::InvalidApiKey);
        }
        match &self.jwt {
            Some(v) => Ok(v.verify(credential).await?),
            None => Err(AuthError::JwtNotConfigured),
        }
    }
}
