//! The registry's HTTP API (axum). `GET /health` is the only route without credentials;
//! everything else needs `Authorization: Bearer <API key>`, is authorised deny-by-default
//! ([`crate::authz`]), and every mutation and every refusal is an audit event.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::TryStreamExt as _;
use palisade_core::merkle::{self, Frontier};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{Event, LogSigner};
use crate::authz::Action;
use crate::blobs::{BlobError, BlobStore};
use crate::crypto::{CryptoError, KeyProvider, LocalKeyFile};
use crate::gates::{self, GatePolicy};
use crate::meta::{Lineage, MetaError, MetaStore, ModelVersion, RegisteredModel, VersionFile};
use palisade_auth::{Authenticator, JwtConfig, Policy, Principal, Resource};

/// Shortest bootstrap token accepted.
pub const MIN_BOOTSTRAP: usize = 32;

/// Longest a metadata request may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Default for how long a request body may go without sending a byte.
pub const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Largest JSON request body.
const MAX_JSON: usize = 1 << 20;
/// Default largest blob.
pub const DEFAULT_MAX_BLOB: u64 = 64 << 30;

/// Called with a revoked key's id.
pub type RevocationHook = Box<dyn Fn(&str) + Send + Sync>;

pub struct Registry {
    pub meta: MetaStore,
    pub blobs: BlobStore,
    pub kek: Box<dyn KeyProvider>,
    pub log: LogSigner,
    pub auth: Authenticator,
    pub policy: Policy,
    body_idle: std::time::Duration,
    /// SHA-256 of the one-time bootstrap token while no API key exists yet.
    bootstrap: tokio::sync::Mutex<Option<String>>,
    checkpoint_lock: tokio::sync::Mutex<()>,
    /// Called with a key id when it is revoked (the gateway drops it from its cache).
    revocation_hooks: tokio::sync::Mutex<Vec<RevocationHook>>,
}

/// How `open` sets the registry up.
pub struct Options {
    /// Metadata store URL; `None`: SQLite in the home directory.
    pub database_url: Option<String>,
    pub max_blob: u64,
    /// Accept OIDC/JWT bearer tokens as well as API keys.
    pub jwt: Option<JwtConfig>,
    /// Operator Cedar policy files, added to the built-in role policies.
    pub policy_files: Vec<PathBuf>,
    /// A one-time bootstrap token (at least 32 characters): on a first start the admin key
    /// is not printed; `POST /api/v1/bootstrap` with this token as the bearer mints it once.
    pub bootstrap_token: Option<String>,
    /// Keep blobs in an object store (`s3://bucket/prefix`) instead of `home/store/blobs`.
    pub blob_store: Option<String>,
    /// Object-store options (`aws_endpoint`, `aws_region`, credentials, …).
    pub blob_store_options: Vec<(String, String)>,
    /// A request body that sends nothing for this long is cut off.
    pub body_idle: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            database_url: None,
            max_blob: DEFAULT_MAX_BLOB,
            jwt: None,
            policy_files: Vec::new(),
            bootstrap_token: None,
            blob_store: None,
            blob_store_options: Vec::new(),
            body_idle: BODY_IDLE,
        }
    }
}

/// What `open` found or made.
pub struct Opened {
    pub registry: Arc<Registry>,
    /// The first admin API key, when this start created it (shown once).
    pub first_admin_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("{0}: the audit signing key must be 32 bytes")]
    AuditKey(PathBuf),
    #[error(transparent)]
    Jwt(#[from] palisade_auth::JwtError),
    #[error("the bootstrap token must be at least {MIN_BOOTSTRAP} characters")]
    BootstrapToken,
    #[error("authorization policy: {0}")]
    Policy(#[from] palisade_auth::PolicyError),
}

fn private_dir(p: &Path) -> Result<(), OpenError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|source| OpenError::Io {
            path: p.to_path_buf(),
            source,
        })
}

/// Opens `$PALISADE_HOME` (creating it on first run): SQLite metadata unless
/// `database_url` names another store, the blob store, the key-encryption key and the
/// audit-log signing key. The first start creates an admin API key.
pub async fn open(home: &Path, options: Options) -> Result<Opened, OpenError> {
    let policy = Policy::load(&options.policy_files)?;
    let jwt = match options.jwt {
        Some(c) => Some(Arc::new(palisade_auth::JwtVerifier::new(c).await?)),
        None => None,
    };
    private_dir(home)?;
    private_dir(&home.join("keys"))?;
    let kek = LocalKeyFile::open_or_create(&home.join("keys/kek"))?;
    let audit_key = home.join("keys/audit-ed25519");
    if !audit_key.exists() {
        let s = LogSigner::generate("palisade/registry");
        write_secret(&audit_key, &s.seed())?;
    }
    let seed: [u8; 32] = std::fs::read(&audit_key)
        .map_err(|source| OpenError::Io {
            path: audit_key.clone(),
            source,
        })?
        .try_into()
        .map_err(|_| OpenError::AuditKey(audit_key.clone()))?;
    let log = LogSigner::from_seed("palisade/registry", seed);
    let url = match options.database_url {
        Some(u) => u,
        None => format!("sqlite://{}", home.join("registry.db").display()),
    };
    let meta = MetaStore::connect(&url).await?;
    let blobs = match &options.blob_store {
        None => BlobStore::open(&home.join("store"), options.max_blob)?,
        Some(url) => {
            let b = BlobStore::open_object(&home.join("store"), url, &options.blob_store_options, options.max_blob)?;
            b.check().await?;
            b
        }
    };
    if options
        .bootstrap_token
        .as_ref()
        .is_some_and(|t| t.trim().len() < MIN_BOOTSTRAP)
    {
        return Err(OpenError::BootstrapToken);
    }
    let fresh = meta.count_api_keys().await? == 0;
    let (first_admin_token, bootstrap) = match (fresh, options.bootstrap_token) {
        (false, _) => (None, None),
        (true, Some(t)) => (None, Some(palisade_auth::apikey::secret_digest(t.trim()))),
        (true, None) => {
            let (_, token) = meta.create_api_key("admin", &["admin".to_owned()]).await?;
            (Some(token), None)
        }
    };
    let auth = Authenticator::new(Some(Arc::new(meta.clone())), jwt);
    let registry = Arc::new(Registry {
        meta,
        blobs,
        kek: Box::new(kek),
        log,
        auth,
        policy,
        bootstrap: tokio::sync::Mutex::new(bootstrap),
        body_idle: options.body_idle,
        checkpoint_lock: tokio::sync::Mutex::new(()),
        revocation_hooks: tokio::sync::Mutex::new(Vec::new()),
    });
    Ok(Opened {
        registry,
        first_admin_token,
    })
}

fn write_secret(path: &Path, data: &[u8]) -> Result<(), OpenError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

/// An API error: status and message, as `{"error": "…"}`.
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        let status = match &e {
            MetaError::NotFound(_) => StatusCode::NOT_FOUND,
            MetaError::Conflict(_) => StatusCode::CONFLICT,
            MetaError::Invalid { .. } => StatusCode::BAD_REQUEST,
            MetaError::Db(_) | MetaError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("metadata: {e}");
        }
        ApiError(status, e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl Registry {
    /// Appends an audit event. A change whose event cannot be recorded is reported to the
    /// client as a failure (500), never acknowledged silently.
    async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) -> ApiResult<()> {
        let detail = match detail {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => Default::default(),
        };
        let event = Event {
            seq: 0,
            time: palisade_core::time::now_rfc3339(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            detail,
        };
        self.meta.append_event(event).await.map(|_| ()).map_err(|e| {
            tracing::error!("audit append failed: {e}");
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the audit log could not record this request: {e}"),
            )
        })
    }

    /// Registers a function called with each revoked key's id.
    pub async fn on_revoke(&self, hook: RevocationHook) {
        self.revocation_hooks.lock().await.push(hook);
    }

    /// Appends events from another component of this process (the gateway) in one
    /// transaction: `(actor, action, target, outcome, detail)`.
    pub async fn record_events(
        &self,
        events: Vec<(String, String, String, String, serde_json::Value)>,
    ) -> Result<(), MetaError> {
        let time = palisade_core::time::now_rfc3339();
        let events = events
            .into_iter()
            .map(|(actor, action, target, outcome, detail)| Event {
                seq: 0,
                time: time.clone(),
                actor,
                action,
                target,
                outcome,
                detail: match detail {
                    serde_json::Value::Object(m) => m.into_iter().collect(),
                    other => [("value".to_owned(), other)].into_iter().collect(),
                },
            })
            .collect();
        self.meta.append_events(events).await.map(|_| ())
    }

    /// The verified contents of one file of a version, for in-process readers (the
    /// gateway loading an ONNX model): every chunk is authenticated and the plaintext
    /// hashed against the file's digest before it is returned; a failure is audited as
    /// tampering. Refused past `max` bytes.
    pub async fn read_file(
        self: &Arc<Self>,
        actor: &str,
        model: &str,
        version: u64,
        path: &str,
        max: u64,
    ) -> Result<Vec<u8>, String> {
        let v = self.meta.get_version(model, version).await.map_err(|e| e.to_string())?;
        let f = v
            .files
            .iter()
            .find(|f| f.path == path)
            .ok_or_else(|| format!("{model}@{version} has no file {path}"))?;
        if f.size > max {
            return Err(format!("{path} is {} bytes, over the limit of {max}", f.size));
        }
        let rec = self.meta.get_blob(&f.digest).await.map_err(|e| e.to_string())?;
        let me = self.clone();
        let rec2 = rec.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(usize::try_from(rec2.size).unwrap_or(0));
            me.blobs.get(&rec2, &mut out, me.kek.as_ref()).map(|_| out)
        })
        .await
        .map_err(|e| e.to_string())?;
        match result {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                if matches!(e, BlobError::Crypto(_) | BlobError::Missing(_)) {
                    let _ = self
                        .audit(
                            actor,
                            "pull-blob",
                            &format!("blob/{}", rec.digest),
                            "tamper",
                            json!({ "error": e.to_string(), "model": model, "version": version, "path": path }),
                        )
                        .await;
                }
                Err(format!(
                    "{model}@{version} {path}: stored data failed verification: {e}"
                ))
            }
        }
    }

    /// Signs a checkpoint of the whole log if it grew since the last one; returns the
    /// latest checkpoint note. Work is proportional to the events since the last
    /// checkpoint (its Merkle frontier is stored with it), not to the log's size.
    pub async fn checkpoint(&self) -> Result<Option<String>, MetaError> {
        let _guard = self.checkpoint_lock.lock().await;
        let size = self.meta.log_size().await?;
        let last = self.meta.last_checkpoint().await?;
        if size == 0 || last.as_ref().is_some_and(|(s, _, _)| *s == size) {
            return Ok(last.map(|(_, n, _)| n));
        }
        let mut frontier = match last {
            Some((s, _, Some(f))) if s < size => f,
            // No usable frontier (a checkpoint from before frontiers were stored): rebuild.
            _ => Frontier::new(),
        };
        // Events are read in bounded batches.
        while frontier.size() < size {
            let to = size.min(frontier.size() + 10_000);
            let batch = self.meta.leaf_hashes(frontier.size(), to).await?;
            if batch.len() as u64 != to - frontier.size() {
                return Err(MetaError::Corrupt(format!(
                    "audit log has a gap between {} and {to}",
                    frontier.size()
                )));
            }
            for leaf in batch {
                frontier.push(leaf);
            }
        }
        let note = self.log.checkpoint(frontier.size(), &frontier.root());
        self.meta.save_checkpoint(&note, &frontier).await?;
        Ok(Some(note))
    }

    /// Authenticates a request's `Authorization` header; a refusal is audited.
    async fn authenticate(&self, headers: &HeaderMap, method: &str, target: &str) -> Result<Principal, ApiError> {
        let header = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        match self.auth.authenticate(header).await {
            Ok(p) => Ok(p),
            Err(e) => {
                if e.is_internal() {
                    tracing::error!("authentication store: {e:?}");
                }
                let _ = self
                    .audit(
                        "anonymous",
                        "authenticate",
                        target,
                        "denied",
                        json!({ "reason": e.to_string(), "method": method }),
                    )
                    .await;
                let status = if e.is_internal() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::UNAUTHORIZED
                };
                Err(ApiError(status, e.to_string()))
            }
        }
    }

    /// Whether `p` may take `action` on `model` (or on the registry as a whole).
    pub(crate) fn allowed(&self, p: &Principal, action: Action, model: Option<&str>) -> palisade_auth::Decision {
        let resource = model.map_or(Resource::Registry, Resource::Model);
        self.policy.decide(p, action.name(), resource)
    }

    /// Authenticates and authorises (deny by default); refusals are audited with the
    /// policies that decided.
    pub(crate) async fn require(
        &self,
        caller: &Caller,
        action: Action,
        model: Option<&str>,
        target: &str,
    ) -> ApiResult<Principal> {
        let p = caller.0.clone();
        let decision = self.allowed(&p, action, model);
        if !decision.allowed {
            let _ = self
                .audit(
                    &p.id,
                    action.name(),
                    target,
                    "denied",
                    json!({
                        "reason": "not permitted",
                        "roles": p.roles,
                        "policies": decision.policies,
                        "errors": decision.errors,
                    }),
                )
                .await;
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("{} may not {} {target}", p.subject, action.name()),
            ));
        }
        Ok(p)
    }
}

/// Routes that answer without credentials; every other route authenticates first (a test
/// walks the OpenAPI document and checks that each one refuses an anonymous call).
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("get", "/api/v1/audit/key"),
    ("post", "/api/v1/bootstrap"),
];

/// The authenticated caller of a request, put there by [`authenticate_layer`].
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        // Only reachable without a principal if a public route asked for one: a bug, refused.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "authentication required".into()))
    }
}

/// Authenticates every request before routing extracts anything from it (so an anonymous
/// caller learns nothing from body validation), except the [`PUBLIC_ROUTES`].
async fn authenticate_layer(
    State(reg): State<Arc<Registry>>,
    matched: Option<axum::extract::MatchedPath>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().as_str().to_ascii_lowercase();
    let public = matched
        .as_ref()
        .is_some_and(|m| PUBLIC_ROUTES.iter().any(|(pm, pp)| *pm == method && *pp == m.as_str()));
    if !public {
        // The path is the caller's: bounded before it goes into the audit log.
        let target: String = req.uri().path().chars().take(256).collect();
        match reg.authenticate(req.headers(), &method, &target).await {
            Ok(p) => {
                req.extensions_mut().insert(Caller(p));
            }
            Err(e) => return e.into_response(),
        }
    }
    next.run(req).await
}

/// The `{"error": …}` body of every failed request.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Palisade registry",
        description = "Encrypted, content-addressed model registry with deny-by-default authorization, promotion gates and a tamper-evident audit log. Every route but the public ones needs `Authorization: Bearer <API key or OIDC token>`."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("bootstrap", bearer());
        api.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

#[utoipa::path(get, path = "/health", tag = "health", security(()), responses((status = 200, description = "`{status: ok}`")))]
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Every route with its OpenAPI description, from the handlers' annotations.
fn api_router() -> OpenApiRouter<Arc<Registry>> {
    // Blobs stream without the JSON body limit (they have their own, --max-blob-size).
    let blobs = OpenApiRouter::new()
        .routes(routes!(put_blob, get_blob))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(health))
        .routes(routes!(list_models, create_model))
        .routes(routes!(get_model))
        .routes(routes!(list_versions, create_version))
        .routes(routes!(get_version))
        .routes(routes!(set_alias, get_alias, delete_alias))
        .routes(routes!(list_attestations, add_attestation))
        .routes(routes!(set_gate, get_gate))
        .routes(routes!(set_model_tag, delete_model_tag))
        .routes(routes!(set_version_tag, delete_version_tag))
        .routes(routes!(get_checkpoint))
        .routes(routes!(get_events))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(routes!(get_log_key))
        .routes(routes!(bootstrap))
        .routes(routes!(create_key))
        .routes(routes!(revoke_key))
        .merge(crate::mlflow::routes())
        // Metadata requests finish in bounded time (blob transfers take as long as their
        // size needs, guarded by the idle body timeout instead).
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .merge(blobs)
}

/// The OpenAPI 3.1 document of the registry API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

pub fn router(reg: Arc<Registry>) -> Router {
    let (routes, api) = api_router().split_for_parts();
    let api = Arc::new(api);
    routes
        .route("/openapi.json", get(move || async move { Json(api.as_ref().clone()) }))
        // Outermost first: a request body that stalls for BODY_IDLE is cut off (slow or
        // stuck uploads do not hold a worker forever), the body limit, then
        // authentication, then the route.
        .route_layer(axum::middleware::from_fn_with_state(reg.clone(), authenticate_layer))
        .layer(DefaultBodyLimit::max(MAX_JSON))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(reg.body_idle))
        .with_state(reg)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewModel {
    name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = NewModel, responses((status = 201, body = RegisteredModel), (status = 409, description = "exists", body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn create_model(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Json(m): Json<NewModel>,
) -> ApiResult<Response> {
    let target = format!("model/{}", m.name);
    let p = reg
        .require(&caller, Action::CreateModel, Some(&m.name), &target)
        .await?;
    let created = reg.meta.create_model(&m.name, &m.description, &p.subject).await?;
    reg.audit(&p.id, "create-model", &target, "allowed", json!({})).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models", responses((status = 200, description = "`{registered_models: [...]}`, the models the caller may read"), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn list_models(State(reg): State<Arc<Registry>>, caller: Caller) -> ApiResult<Response> {
    // Any authenticated caller may list; it sees the models it may read.
    let p = &caller.0;
    let models: Vec<_> = reg
        .meta
        .list_models()
        .await?
        .into_iter()
        .filter(|m| reg.allowed(p, Action::Read, Some(&m.name)).allowed)
        .collect();
    Ok(Json(json!({ "registered_models": models })).into_response())
}

#[utoipa::path(get, path = "/api/v1/models/{name}", tag = "models", params(("name" = String, Path, description = "model name")), responses((status = 200, description = "the model with its `aliases` and `tags`"), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_model(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    reg.require(&caller, Action::Read, Some(&name), &format!("model/{name}"))
        .await?;
    let model = reg.meta.get_model(&name).await?;
    let mut v = serde_json::to_value(model).map_err(internal)?;
    v["aliases"] = json!(reg.meta.aliases(&name).await?);
    v["tags"] = json!(reg.meta.tags(&name, None).await?);
    Ok(Json(v).into_response())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!("internal error: {e}");
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

#[utoipa::path(get, path = "/api/v1/models/{name}/versions", tag = "versions", params(("name" = String, Path, description = "model name")), responses((status = 200, description = "`{versions: [numbers]}`"), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn list_versions(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    reg.require(&caller, Action::Read, Some(&name), &format!("model/{name}"))
        .await?;
    Ok(Json(json!({ "versions": reg.meta.list_versions(&name).await? })).into_response())
}

#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{version}", tag = "versions", params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "version number (or an alias where it says so)")), responses((status = 200, body = ModelVersion), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_version(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    reg.require(&caller, Action::Read, Some(&name), &format!("model/{name}@{version}"))
        .await?;
    // A number, or an alias.
    let v = match version.parse::<u64>() {
        Ok(v) => v,
        Err(_) => reg.meta.resolve_alias(&name, &version).await?,
    };
    let mut body = serde_json::to_value(reg.meta.get_version(&name, v).await?).map_err(internal)?;
    body["tags"] = json!(reg.meta.tags(&name, Some(v)).await?);
    Ok(Json(body).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TagBody {
    value: String,
}

/// Largest tag value.
const MAX_TAG_VALUE: usize = 4096;

/// `PUT|DELETE /api/v1/models/{name}/tags/{key}` and
/// `…/versions/{version}/tags/{key}`: tags are mutable annotations (versions are not).
async fn tag(
    reg: &Registry,
    caller: &Caller,
    name: &str,
    version: Option<&str>,
    key: &str,
    value: Option<String>,
) -> ApiResult<Response> {
    let target = match version {
        Some(v) => format!("model/{name}@{v}#tag/{key}"),
        None => format!("model/{name}#tag/{key}"),
    };
    let p = reg.require(caller, Action::Push, Some(name), &target).await?;
    reg.meta.get_model(name).await?;
    let version = match version {
        None => None,
        Some(v) => {
            let n = v
                .parse::<u64>()
                .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("{v:?} is not a version number")))?;
            reg.meta.get_version(name, n).await?;
            Some(n)
        }
    };
    match &value {
        Some(value) => {
            if value.len() > MAX_TAG_VALUE {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("tag values are at most {MAX_TAG_VALUE} bytes"),
                ));
            }
            reg.meta.set_tag(name, version, key, value).await?;
            reg.audit(&p.id, "set-tag", &target, "allowed", json!({ "value": value }))
                .await?;
        }
        None => {
            reg.meta.delete_tag(name, version, key).await?;
            reg.audit(&p.id, "delete-tag", &target, "allowed", json!({})).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(put, path = "/api/v1/models/{name}/tags/{key}", tag = "tags", params(("name" = String, Path, description = "model name"), ("key" = String, Path, description = "tag key")), request_body = TagBody, responses((status = 204), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn set_model_tag(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, key)): UrlPath<(String, String)>,
    Json(b): Json<TagBody>,
) -> ApiResult<Response> {
    tag(&reg, &caller, &name, None, &key, Some(b.value)).await
}

#[utoipa::path(delete, path = "/api/v1/models/{name}/tags/{key}", tag = "tags", params(("name" = String, Path, description = "model name"), ("key" = String, Path, description = "tag key")), responses((status = 204), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn delete_model_tag(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, key)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    tag(&reg, &caller, &name, None, &key, None).await
}

#[utoipa::path(put, path = "/api/v1/models/{name}/versions/{version}/tags/{key}", tag = "tags", params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "version number (or an alias where it says so)"), ("key" = String, Path, description = "tag key")), request_body = TagBody, responses((status = 204), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn set_version_tag(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, version, key)): UrlPath<(String, String, String)>,
    Json(b): Json<TagBody>,
) -> ApiResult<Response> {
    tag(&reg, &caller, &name, Some(&version), &key, Some(b.value)).await
}

#[utoipa::path(delete, path = "/api/v1/models/{name}/versions/{version}/tags/{key}", tag = "tags", params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "version number (or an alias where it says so)"), ("key" = String, Path, description = "tag key")), responses((status = 204), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn delete_version_tag(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, version, key)): UrlPath<(String, String, String)>,
) -> ApiResult<Response> {
    tag(&reg, &caller, &name, Some(&version), &key, None).await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewVersion {
    files: Vec<VersionFile>,
    #[serde(default)]
    lineage: Lineage,
    /// The root digest the client computed; checked against the files.
    digest: Option<String>,
}

/// The OpenSSF Model Signing root digest of files: SHA-256 over their digests in the
/// reference's path order.
fn root_digest(files: &[VersionFile]) -> Result<String, ApiError> {
    let mut sorted: Vec<&VersionFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    let mut resources = Vec::with_capacity(files.len());
    for f in sorted {
        let digest = hex::decode(&f.digest)
            .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("digest of {} is not hex", f.path)))?;
        resources.push(palisade_sign::serialize::Resource {
            name: f.path.clone(),
            algorithm: "sha256".into(),
            digest,
        });
    }
    Ok(hex::encode(palisade_sign::serialize::root_digest(&resources)))
}

fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 1024
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && !p.contains('\0')
}

#[utoipa::path(post, path = "/api/v1/models/{name}/versions", tag = "versions", params(("name" = String, Path, description = "model name")), request_body = NewVersion, responses((status = 201, body = ModelVersion), (status = 400, body = ErrorBody), (status = 409, description = "this content is already a version", body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn create_version(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
    Json(v): Json<NewVersion>,
) -> ApiResult<Response> {
    let target = format!("model/{name}");
    let p = reg.require(&caller, Action::Push, Some(&name), &target).await?;
    if v.files.is_empty() || v.files.len() > 100_000 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a version has 1 to 100000 files".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &v.files {
        if !valid_path(&f.path) || !seen.insert(f.path.as_str()) {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("bad or repeated file path {:?}", f.path),
            ));
        }
        let blob = reg.meta.get_blob(&f.digest).await.map_err(|_| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("{}: blob {} was not pushed", f.path, f.digest),
            )
        })?;
        if blob.size != f.size {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("{}: size {} but the blob has {}", f.path, f.size, blob.size),
            ));
        }
    }
    let digest = root_digest(&v.files)?;
    if let Some(claimed) = &v.digest {
        if *claimed != digest {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("the files hash to root digest {digest}, not {claimed}"),
            ));
        }
    }
    let created = reg
        .meta
        .create_version(&name, &digest, &v.files, &v.lineage, &p.subject)
        .await?;
    reg.audit(
        &p.id,
        "create-version",
        &format!("model/{name}@{}", created.version),
        "allowed",
        json!({ "digest": digest }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct AliasBody {
    version: u64,
}

#[utoipa::path(put, path = "/api/v1/models/{name}/aliases/{alias}", tag = "aliases", params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias, e.g. production")), request_body = AliasBody, responses((status = 200, description = "promoted; an audit checkpoint is signed"), (status = 412, description = "the gate's requirements are unmet (listed)", body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn set_alias(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, alias)): UrlPath<(String, String)>,
    Json(b): Json<AliasBody>,
) -> ApiResult<Response> {
    let target = format!("model/{name}@{alias}");
    let p = reg.require(&caller, Action::Promote, Some(&name), &target).await?;
    if let Some(policy) = reg.meta.gate(&name, &alias).await? {
        let policy = GatePolicy::parse(&policy)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("stored gate: {e}")))?;
        let version = reg.meta.get_version(&name, b.version).await?;
        let bundles = reg.meta.attestations(&name, b.version).await?;
        let unmet = gates::unmet(&policy, &version, &bundles, &p.subject);
        if !unmet.is_empty() {
            let _ = reg
                .audit(
                    &p.id,
                    "promote",
                    &target,
                    "denied",
                    json!({ "version": b.version, "unmet": unmet }),
                )
                .await;
            let body =
                json!({ "error": format!("version {} does not meet the {alias} gate", b.version), "unmet": unmet });
            return Ok((StatusCode::PRECONDITION_FAILED, Json(body)).into_response());
        }
    }
    reg.meta.set_alias(&name, &alias, Some(b.version), &p.subject).await?;
    reg.audit(&p.id, "promote", &target, "allowed", json!({ "version": b.version }))
        .await?;
    reg.checkpoint().await?;
    Ok(Json(json!({ "model": name, "alias": alias, "version": b.version })).into_response())
}

#[utoipa::path(delete, path = "/api/v1/models/{name}/aliases/{alias}", tag = "aliases", params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias, e.g. production")), responses((status = 204), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn delete_alias(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, alias)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    let target = format!("model/{name}@{alias}");
    let p = reg.require(&caller, Action::Promote, Some(&name), &target).await?;
    reg.meta.set_alias(&name, &alias, None, &p.subject).await?;
    reg.audit(&p.id, "remove-alias", &target, "allowed", json!({})).await?;
    reg.checkpoint().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/models/{name}/aliases/{alias}", tag = "aliases", params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias, e.g. production")), responses((status = 200, description = "`{model, alias, version, history: [AliasChange]}`"), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_alias(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, alias)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    reg.require(&caller, Action::Read, Some(&name), &format!("model/{name}@{alias}"))
        .await?;
    let version = reg.meta.resolve_alias(&name, &alias).await?;
    let history = reg.meta.alias_history(&name, &alias).await?;
    Ok(Json(json!({ "model": name, "alias": alias, "version": version, "history": history })).into_response())
}

#[utoipa::path(put, path = "/api/v1/blobs/{digest}", tag = "blobs", params(("digest" = String, Path, description = "SHA-256 of the plaintext, lowercase hex")), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 201, description = "stored"), (status = 200, description = "already stored"), (status = 400, description = "the content does not hash to the name", body = ErrorBody), (status = 413, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn put_blob(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath(digest): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let target = format!("blob/{digest}");
    let p = reg.require(&caller, Action::Push, None, &target).await?;
    if let Ok(existing) = reg.meta.get_blob(&digest).await {
        return Ok(Json(json!({ "digest": existing.digest, "size": existing.size, "existed": true })).into_response());
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let mut bridge = tokio_util::io::SyncIoBridge::new(reader);
    let r2 = reg.clone();
    let d2 = digest.clone();
    let stored = tokio::task::spawn_blocking(move || r2.blobs.put(&mut bridge, &d2, r2.kek.as_ref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let rec = match stored {
        Ok(r) => r,
        Err(e) => {
            let status = match &e {
                BlobError::BadDigest(_) | BlobError::Crypto(CryptoError::Digest { .. }) => StatusCode::BAD_REQUEST,
                BlobError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let _ = reg
                .audit(&p.id, "push-blob", &target, "failed", json!({ "error": e.to_string() }))
                .await;
            return Err(ApiError(status, e.to_string()));
        }
    };
    let kept = reg.meta.put_blob(&rec).await?;
    if kept.file_id != rec.file_id {
        // A concurrent push of the same content won; ours is redundant.
        if let Err(e) = reg.blobs.remove(&rec).await {
            tracing::warn!(digest = %rec.digest, "redundant copy not removed: {e}");
        }
    }
    reg.audit(&p.id, "push-blob", &target, "allowed", json!({ "size": kept.size }))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "digest": kept.digest, "size": kept.size, "existed": false })),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/blobs/{digest}", tag = "blobs", params(("digest" = String, Path, description = "SHA-256 of the plaintext, lowercase hex")), responses((status = 200, description = "the verified plaintext", content_type = "application/octet-stream"), (status = 404, body = ErrorBody), (status = 500, description = "stored data failed verification (audited as tamper)", body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_blob(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath(digest): UrlPath<String>,
) -> ApiResult<Response> {
    let target = format!("blob/{digest}");
    let p = reg.require(&caller, Action::Read, None, &target).await?;
    let rec = reg.meta.get_blob(&digest).await?;
    // First pass: authenticate every chunk and the blob's end (AES-GCM, the digest bound
    // as associated data) before the first byte is sent; a failure is refused and audited
    // as tampering.
    let r2 = reg.clone();
    let rec2 = rec.clone();
    let verified = tokio::task::spawn_blocking(move || r2.blobs.verify(&rec2, r2.kek.as_ref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match verified {
        Ok(_) => {}
        Err(e @ (BlobError::Crypto(_) | BlobError::Missing(_))) => {
            let _ = reg
                .audit(&p.id, "pull-blob", &target, "tamper", json!({ "error": e.to_string() }))
                .await;
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("refused: the stored blob failed verification ({e}); recorded as a tamper event"),
            ));
        }
        Err(e) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
    // Second pass: decrypt again (every chunk is authenticated again) straight into the
    // response, hashing the plaintext. A blob altered between the passes, or whose
    // plaintext does not hash to its digest, cuts the response short (which every client,
    // and `palisade pull`, rejects) and is audited as tampering.
    let size = rec.size;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
    let r3 = reg.clone();
    let handle = tokio::runtime::Handle::current();
    let actor = p.id.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        if let Err(e) = r3.blobs.get(&rec, &mut w, r3.kek.as_ref()) {
            if tx.is_closed() {
                tracing::debug!("blob {}: the client went away during the download", rec.digest);
                return;
            }
            tracing::error!("blob {} failed during streaming: {e}", rec.digest);
            if matches!(e, BlobError::Crypto(_)) {
                let _ = handle.block_on(r3.audit(
                    &actor,
                    "pull-blob",
                    &target,
                    "tamper",
                    json!({ "error": e.to_string() }),
                ));
            }
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = tokio_stream_from(rx);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/audit/checkpoint", tag = "audit", responses((status = 200, description = "the latest signed checkpoint (C2SP signed note)", content_type = "text/plain"), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_checkpoint(State(reg): State<Arc<Registry>>, caller: Caller) -> ApiResult<Response> {
    reg.require(&caller, Action::Read, None, "audit/checkpoint").await?;
    match reg.checkpoint().await? {
        Some(note) => Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, "the audit log is empty".into())),
    }
}

#[utoipa::path(get, path = "/api/v1/audit/key", tag = "audit", security(()), responses((status = 200, description = "the log's verifier key (`name+keyid+base64`)", content_type = "text/plain")))]
async fn get_log_key(State(reg): State<Arc<Registry>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", reg.log.verifier().to_vkey()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Range {
    from: Option<u64>,
    to: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", params(("from" = Option<u64>, Query, description = "first seq"), ("to" = Option<u64>, Query, description = "end seq (exclusive)")), responses((status = 200, body = Vec<Event>), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_events(State(reg): State<Arc<Registry>>, caller: Caller, Query(r): Query<Range>) -> ApiResult<Response> {
    reg.require(&caller, Action::ReadAudit, None, "audit/events").await?;
    let from = r.from.unwrap_or(0);
    let to = r.to.unwrap_or(u64::MAX >> 1).min(from.saturating_add(100_000));
    Ok(Json(reg.meta.events(from, to).await?).into_response())
}

#[derive(Deserialize)]
struct InclusionQuery {
    seq: u64,
    size: u64,
}

/// The leaf hashes of the first `size` events, for a proof request.
async fn tree_prefix(reg: &Registry, caller: &Caller, size: u64) -> ApiResult<Vec<merkle::Hash>> {
    reg.require(caller, Action::Read, None, "audit/proof").await?;
    let mut leaves = reg.meta.leaves().await?;
    let n = leaves.len();
    match usize::try_from(size) {
        Ok(size) if size >= 1 && size <= n => {
            leaves.truncate(size);
            Ok(leaves)
        }
        _ => Err(ApiError(StatusCode::BAD_REQUEST, format!("tree size must be 1..={n}"))),
    }
}

fn proof_response(fields: serde_json::Value, proof: &[merkle::Hash]) -> Response {
    let mut body = fields;
    body["hashes"] = json!(proof.iter().map(hex::encode).collect::<Vec<_>>());
    Json(body).into_response()
}

#[utoipa::path(get, path = "/api/v1/audit/proof/inclusion", tag = "audit", params(("seq" = u64, Query), ("size" = u64, Query)), responses((status = 200, description = "RFC 6962 inclusion proof (hex hashes)"), (status = 400, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn inclusion_proof(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<InclusionQuery>,
) -> ApiResult<Response> {
    let leaves = tree_prefix(&reg, &caller, q.size).await?;
    let proof = usize::try_from(q.seq)
        .ok()
        .and_then(|i| merkle::inclusion_proof(i, &leaves))
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "seq must be below size".into()))?;
    Ok(proof_response(json!({ "seq": q.seq, "size": q.size }), &proof))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: u64,
}

#[utoipa::path(get, path = "/api/v1/audit/proof/consistency", tag = "audit", params(("from" = u64, Query), ("to" = u64, Query)), responses((status = 200, description = "RFC 6962 consistency proof (hex hashes)"), (status = 400, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn consistency_proof(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Response> {
    let leaves = tree_prefix(&reg, &caller, q.to).await?;
    let proof = usize::try_from(q.from)
        .ok()
        .and_then(|m| merkle::consistency_proof(m, &leaves))
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "need 0 < from <= to".into()))?;
    Ok(proof_response(json!({ "from": q.from, "to": q.to }), &proof))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewKey {
    subject: String,
    roles: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey, responses((status = 201, description = "`{id, token}`; the token is shown once"), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn create_key(State(reg): State<Arc<Registry>>, caller: Caller, Json(k): Json<NewKey>) -> ApiResult<Response> {
    let p = reg.require(&caller, Action::ManageKeys, None, "keys").await?;
    if k.subject.is_empty()
        || k.subject.len() > 256
        || k.roles.iter().any(|r| r.is_empty() || r.contains(',') || r.len() > 200)
    {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "subject 1-256 characters; roles without commas".into(),
        ));
    }
    let (created, token) = reg.meta.create_api_key(&k.subject, &k.roles).await?;
    reg.audit(
        &p.id,
        "create-key",
        &format!("key/{}", created.id),
        "allowed",
        json!({ "subject": k.subject, "roles": k.roles }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": created.id, "token": token }))).into_response())
}

/// `POST /api/v1/bootstrap`: exchanges the one-time bootstrap token (as the bearer) for
/// the first admin API key. Works once, and only while no API key exists.
#[utoipa::path(post, path = "/api/v1/bootstrap", tag = "keys", security(("bootstrap" = [])), responses((status = 201, description = "`{id, token}`: the first admin key"), (status = 401, body = ErrorBody)))]
async fn bootstrap(State(reg): State<Arc<Registry>>, headers: HeaderMap) -> ApiResult<Response> {
    let given = palisade_auth::bearer(
        headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        palisade_auth::DEFAULT_MAX_CREDENTIAL,
    )
    .ok();
    let mut pending = reg.bootstrap.lock().await;
    let ok = match (pending.as_deref(), given) {
        (Some(digest), Some(token)) => palisade_auth::apikey::secret_matches(digest, token),
        _ => false,
    };
    if !ok || reg.meta.count_api_keys().await? != 0 {
        let _ = reg
            .audit(
                "anonymous",
                "bootstrap",
                "key/admin",
                "denied",
                json!({ "reason": "no pending bootstrap for this token" }),
            )
            .await;
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "no bootstrap is pending for this token".into(),
        ));
    }
    let (created, token) = reg.meta.create_api_key("admin", &["admin".to_owned()]).await?;
    *pending = None;
    reg.audit(
        &created.id,
        "bootstrap",
        &format!("key/{}", created.id),
        "allowed",
        json!({}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": created.id, "token": token }))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "API key id (pk_…)")), responses((status = 204), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn revoke_key(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let p = reg.require(&caller, Action::ManageKeys, None, "keys").await?;
    reg.meta.revoke_api_key(&id).await?;
    for hook in reg.revocation_hooks.lock().await.iter() {
        hook(&id);
    }
    reg.audit(&p.id, "revoke-key", &format!("key/{id}"), "allowed", json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/models/{name}/versions/{version}/attestations", tag = "evidence", params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "version number (or an alias where it says so)")), request_body(content = Object, description = "a Sigstore bundle v0.3 (model signature or attestation)"), responses((status = 201, description = "attached"), (status = 400, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn add_attestation(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, version)): UrlPath<(String, u64)>,
    body: String,
) -> ApiResult<Response> {
    let target = format!("model/{name}@{version}");
    let p = reg.require(&caller, Action::Push, Some(&name), &target).await?;
    let bundle = palisade_sign::Bundle::from_json(body.as_bytes()).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("not a Sigstore bundle with a DSSE envelope: {e}"),
        )
    })?;
    let predicate = bundle
        .envelope()
        .ok()
        .and_then(|e| base64_payload(&e.payload))
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .and_then(|v| v.get("predicateType").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let seq = reg.meta.add_attestation(&name, version, &body, &p.subject).await?;
    reg.audit(
        &p.id,
        "add-attestation",
        &target,
        "allowed",
        json!({ "seq": seq, "predicate_type": predicate }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "seq": seq, "predicate_type": predicate })),
    )
        .into_response())
}

fn base64_payload(p: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(p.trim()).ok()
}

#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{version}/attestations", tag = "evidence", params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "version number (or an alias where it says so)")), responses((status = 200, description = "the attached bundles"), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn list_attestations(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, version)): UrlPath<(String, u64)>,
) -> ApiResult<Response> {
    reg.require(&caller, Action::Read, Some(&name), &format!("model/{name}@{version}"))
        .await?;
    let bundles: Vec<serde_json::Value> = reg
        .meta
        .attestations(&name, version)
        .await?
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    Ok(Json(json!({ "attestations": bundles })).into_response())
}

#[utoipa::path(put, path = "/api/v1/models/{name}/gates/{alias}", tag = "gates", params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias, e.g. production")), request_body = GatePolicy, responses((status = 200, description = "set"), (status = 400, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn set_gate(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, alias)): UrlPath<(String, String)>,
    body: String,
) -> ApiResult<Response> {
    let target = format!("model/{name}@{alias}/gate");
    let p = reg.require(&caller, Action::ManageGates, Some(&name), &target).await?;
    reg.meta.get_model(&name).await?;
    let policy =
        GatePolicy::parse(&body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("gate policy: {e}")))?;
    let canonical =
        serde_json::to_string(&policy).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    reg.meta.set_gate(&name, &alias, Some(&canonical), &p.subject).await?;
    reg.audit(&p.id, "set-gate", &target, "allowed", json!({ "policy": policy }))
        .await?;
    Ok(Json(policy).into_response())
}

#[utoipa::path(get, path = "/api/v1/models/{name}/gates/{alias}", tag = "gates", params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias, e.g. production")), responses((status = 200, body = GatePolicy), (status = 404, body = ErrorBody), (status = 401, description = "no or bad credentials", body = ErrorBody), (status = 403, description = "not permitted", body = ErrorBody)))]
async fn get_gate(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    UrlPath((name, alias)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    reg.require(
        &caller,
        Action::Read,
        Some(&name),
        &format!("model/{name}@{alias}/gate"),
    )
    .await?;
    match reg.meta.gate(&name, &alias).await? {
        Some(p) => Ok(([(header::CONTENT_TYPE, "application/json")], p).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no gate on {name}@{alias}"))),
    }
}

/// A `Write` that forwards each write as a body chunk (from a blocking thread).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(axum::body::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
