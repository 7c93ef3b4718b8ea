//! KServe Open Inference Protocol v2 (REST) for native ONNX models: health, server and
//! model metadata, readiness, and inference (`/v2/models/{m}[/versions/{v}]/infer`).
//! Errors are `{"error": "…"}` as the protocol specifies.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::ModelKind;
use crate::deploy::{Backend, Deployment, Loaded};
use crate::error::{GatewayError, GwResult, Kind, Wire};
use crate::metrics::{ModelBackend, Shadow};
use crate::onnx::{InferError, InputTensor, OutputTensor};
use crate::{Caller, Gateway, Served};

/// Inputs with more elements than this run on the blocking pool (small ones inline).
const INLINE_ELEMENTS: usize = 16 * 1024;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}", get(version_metadata))
        .route("/v2/models/{model}/versions/{version}/ready", get(version_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_version))
}

async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// Ready when every ONNX model has its stable backend loaded and the gateway is not
/// draining.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let ok = !gw.is_draining() && gw.deployments.all().all(|d| d.kind() != ModelKind::Onnx || d.ready());
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ok }))).into_response()
}

async fn server_metadata(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
) -> GwResult<Json<Value>> {
    let _ = (&gw, &caller);
    Ok(Json(json!({
        "name": "palisade",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    })))
}

/// The deployment of an ONNX model the caller may call.
fn onnx_model<'g>(gw: &'g Gateway, caller: &Caller, model: &str) -> GwResult<&'g Arc<Deployment>> {
    gw.require(caller, "infer", Some(model), Wire::Plain)?;
    gw.deployments
        .get(model)
        .filter(|d| d.kind() == ModelKind::Onnx)
        .ok_or_else(|| GatewayError::new(Kind::NotFound, format!("no ONNX model `{model}`")))
}

fn parse_version(v: &str) -> GwResult<u64> {
    v.parse().map_err(|_| {
        GatewayError::new(
            Kind::NotFound,
            format!("no version `{}`", v.chars().take(64).collect::<String>()),
        )
    })
}

/// The backend serving registry version `version` of a model.
fn backend_for_version(d: &Deployment, version: u64) -> GwResult<(usize, Arc<Loaded>)> {
    d.backends
        .iter()
        .enumerate()
        .find_map(|(i, b)| b.loaded().filter(|l| l.version == version).map(|l| (i, l)))
        .ok_or_else(|| {
            GatewayError::new(
                Kind::NotFound,
                format!("version {version} of `{}` is not being served", d.name),
            )
        })
}

fn metadata(d: &Deployment, l: &Loaded) -> Value {
    let versions: Vec<String> = d
        .backends
        .iter()
        .filter_map(|b| b.loaded().map(|l| l.version.to_string()))
        .collect();
    json!({
        "name": d.name,
        "versions": versions,
        "platform": "onnx_tract",
        "inputs": l.model.inputs,
        "outputs": l.model.outputs,
        "parameters": { "version": l.version.to_string(), "digest": l.digest },
    })
}

fn stable_loaded(d: &Deployment) -> GwResult<Arc<Loaded>> {
    let r = d.route();
    let b: &Backend = &d.backends[r.backend];
    b.loaded()
        .ok_or_else(|| GatewayError::new(Kind::Unavailable, format!("`{}` is not loaded yet", d.name)).retry_after(1))
}

async fn model_metadata(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
) -> GwResult<Json<Value>> {
    let d = onnx_model(&gw, &caller, &model)?;
    let l = stable_loaded(d)?;
    Ok(Json(metadata(d, &l)))
}

async fn version_metadata(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path((model, version)): Path<(String, String)>,
) -> GwResult<Json<Value>> {
    let d = onnx_model(&gw, &caller, &model)?;
    let (_, l) = backend_for_version(d, parse_version(&version)?)?;
    Ok(Json(metadata(d, &l)))
}

async fn model_ready(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
) -> GwResult<Response> {
    let d = onnx_model(&gw, &caller, &model)?;
    let ok = d.ready();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(json!({ "name": d.name, "ready": ok }))).into_response())
}

async fn version_ready(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path((model, version)): Path<(String, String)>,
) -> GwResult<Response> {
    let d = onnx_model(&gw, &caller, &model)?;
    let (_, l) = backend_for_version(d, parse_version(&version)?)?;
    Ok(Json(json!({ "name": d.name, "version": l.version.to_string(), "ready": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    /// Accepted and ignored (no request parameter changes how Palisade runs a model).
    #[serde(default, rename = "parameters")]
    _parameters: Option<serde_json::Map<String, Value>>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestedOutput {
    name: String,
    #[serde(default, rename = "parameters")]
    _parameters: Option<serde_json::Map<String, Value>>,
}

async fn infer(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
    body: Body,
) -> Response {
    run(gw, caller, model, None, body).await
}

async fn infer_version(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path((model, version)): Path<(String, String)>,
    body: Body,
) -> Response {
    match parse_version(&version) {
        Ok(v) => run(gw, caller, model, Some(v), body).await,
        Err(e) => e.into_response(),
    }
}

async fn run(gw: Arc<Gateway>, caller: Caller, model: String, version: Option<u64>, body: Body) -> Response {
    let mut served = Served {
        model: gw.deployments.get(&model).map(|d| d.name.clone()),
        ..Served::default()
    };
    let result = infer_inner(&gw, &caller, &model, version, body, &mut served).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(served);
    resp
}

async fn infer_inner(
    gw: &Arc<Gateway>,
    caller: &Caller,
    model: &str,
    version: Option<u64>,
    body: Body,
    served: &mut Served,
) -> GwResult<Response> {
    let d = onnx_model(gw, caller, model)?.clone();
    let bytes = crate::limits::read_body(body, gw.config.limits.max_body_bytes, Wire::Plain).await?;
    crate::limits::check_depth(&bytes, gw.config.limits.max_json_depth)?;
    served.body = Some(bytes.clone());
    served.body_log = d.config.body_log;
    let req: InferRequest =
        serde_json::from_slice(&bytes).map_err(|e| GatewayError::invalid(format!("not an inference request: {e}")))?;
    let admission = gw.admit(caller, &d.name, 0).await?;
    let (index, loaded, shadow) = match version {
        Some(v) => {
            let (i, l) = backend_for_version(&d, v)?;
            (i, l, None)
        }
        None => {
            let r = d.route();
            let l = d.backends[r.backend].loaded().ok_or_else(|| {
                GatewayError::new(Kind::Unavailable, format!("`{}` is not loaded yet", d.name)).retry_after(1)
            })?;
            (r.backend, l, r.shadow)
        }
    };
    served.backend = Some(d.backends[index].name.clone());
    let wanted: Vec<String> = req.outputs.iter().map(|o| o.name.clone()).collect();
    let started = Instant::now();
    let inputs = Arc::new(req.inputs);
    let result = execute(&d, loaded.clone(), inputs.clone(), wanted.clone()).await;
    let elapsed = started.elapsed();
    gw.metrics
        .upstream_duration
        .get_or_create(&ModelBackend {
            model: d.name.clone(),
            backend: d.backends[index].name.clone(),
        })
        .observe(elapsed.as_secs_f64());
    // Invalid input is the client's fault, not the backend's: it does not count against
    // a canary.
    let outputs = match result {
        Ok(o) => {
            d.backends[index].record(true, elapsed);
            o
        }
        Err(InferError::Invalid(e)) => {
            gw.metrics.deny("invalid");
            return Err(GatewayError::invalid(e.0));
        }
        Err(InferError::Run(e)) => {
            d.backends[index].record(false, elapsed);
            tracing::error!(model = %d.name, version = loaded.version, error = %e, "inference failed");
            return Err(GatewayError::new(
                Kind::Internal,
                "inference failed (see the gateway log)",
            ));
        }
    };
    if let Some(s) = shadow {
        spawn_shadow(gw, &d, s, inputs, wanted, outputs.clone());
    }
    let mut resp = Json(json!({
        "model_name": d.name,
        "model_version": loaded.version.to_string(),
        "id": req.id,
        "outputs": outputs,
    }))
    .into_response();
    for (k, v) in &admission.headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    Ok(resp)
}

async fn execute(
    d: &Deployment,
    loaded: Arc<Loaded>,
    inputs: Arc<Vec<InputTensor>>,
    wanted: Vec<String>,
) -> Result<Vec<OutputTensor>, InferError> {
    let max_batch = d.config.max_batch;
    let enforce = d.config.enforce_profile;
    let elements: usize = inputs
        .iter()
        .map(|t| t.shape.iter().map(|&x| x as usize).fold(1usize, usize::saturating_mul))
        .fold(0usize, usize::saturating_add);
    if elements <= INLINE_ELEMENTS {
        return loaded.model.infer(&inputs, &wanted, max_batch, enforce);
    }
    tokio::task::spawn_blocking(move || loaded.model.infer(&inputs, &wanted, max_batch, enforce))
        .await
        .map_err(|e| InferError::Run(e.to_string()))?
}

/// Runs the shadow backend on the same inputs and compares; nothing reaches the client.
fn spawn_shadow(
    gw: &Arc<Gateway>,
    d: &Arc<Deployment>,
    shadow: usize,
    inputs: Arc<Vec<InputTensor>>,
    wanted: Vec<String>,
    primary: Vec<OutputTensor>,
) {
    let name = d.name.clone();
    let metric = move |result: &'static str| Shadow {
        model: name.clone(),
        result,
    };
    let Ok(permit) = gw.shadow_slots.clone().try_acquire_owned() else {
        gw.metrics.shadow.get_or_create(&metric("skipped")).inc();
        return;
    };
    let Some(loaded) = d.backends[shadow].loaded() else {
        gw.metrics.shadow.get_or_create(&metric("skipped")).inc();
        return;
    };
    let (gw, d) = (gw.clone(), d.clone());
    let background = gw.background.clone();
    background.spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        let result = execute(&d, loaded.clone(), inputs, wanted).await;
        d.backends[shadow].record(result.is_ok(), started.elapsed());
        let outcome = match result {
            Ok(out) if same_outputs(&primary, &out) => "match",
            Ok(out) => {
                tracing::info!(model = %d.name, shadow = %d.backends[shadow].name, version = loaded.version,
                    primary = %serde_json::to_string(&primary).unwrap_or_default().chars().take(512).collect::<String>(),
                    shadowed = %serde_json::to_string(&out).unwrap_or_default().chars().take(512).collect::<String>(),
                    "shadow answer differs");
                "mismatch"
            }
            Err(e) => {
                tracing::warn!(model = %d.name, shadow = %d.backends[shadow].name, error = %e, "shadow request failed");
                "error"
            }
        };
        gw.metrics.shadow.get_or_create(&metric(outcome)).inc();
    });
}

/// Same names, shapes and types; integers equal; floats within 1e-4 (relative).
pub fn same_outputs(a: &[OutputTensor], b: &[OutputTensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.shape == y.shape
                && x.datatype == y.datatype
                && x.data.len() == y.data.len()
                && x.data.iter().zip(&y.data).all(|(p, q)| match (p.as_f64(), q.as_f64()) {
                    (Some(p), Some(q)) if p.fract() != 0.0 || q.fract() != 0.0 => {
                        (p - q).abs() <= 1e-4 * p.abs().max(q.abs()).max(1.0)
                    }
                    _ => p == q,
                })
        })
}
