//! The gateway's operator API: deployment state and changes (`/gateway/v1/deployments`),
//! and Prometheus metrics (`/metrics`). Reading needs `read-metrics`; changing a model's
//! deployment needs `deploy` on that model.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::deploy::CanarySpec;
use crate::error::{GatewayError, GwResult, Kind, Wire};
use crate::{Caller, Gateway};

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/gateway/v1/deployments", get(list))
        .route("/gateway/v1/deployments/{model}", get(show))
        .route("/gateway/v1/deployments/{model}/switch", post(switch))
        .route("/gateway/v1/deployments/{model}/canary", post(canary))
        .route("/gateway/v1/deployments/{model}/rollback", post(rollback))
        .route("/gateway/v1/deployments/{model}/shadow", put(shadow))
}

async fn metrics(State(gw): State<Arc<Gateway>>, Extension(caller): Extension<Caller>) -> GwResult<Response> {
    gw.require(&caller, "read-metrics", None, Wire::Plain)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics.encode(),
    )
        .into_response())
}

async fn list(State(gw): State<Arc<Gateway>>, Extension(caller): Extension<Caller>) -> GwResult<Json<Value>> {
    gw.require(&caller, "read-metrics", None, Wire::Plain)?;
    let mut all: Vec<_> = gw.deployments.all().map(|d| d.view()).collect();
    all.sort_by(|a, b| a.model.cmp(&b.model));
    Ok(Json(json!({ "deployments": all })))
}

async fn show(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
) -> GwResult<Json<Value>> {
    gw.require(&caller, "read-metrics", None, Wire::Plain)?;
    let d = gw
        .deployments
        .get(&model)
        .ok_or_else(|| GatewayError::new(Kind::NotFound, format!("no model `{model}`")))?;
    Ok(Json(serde_json::to_value(d.view()).map_err(GatewayError::internal)?))
}

fn body<T: serde::de::DeserializeOwned>(gw: &Gateway, raw: &[u8]) -> GwResult<T> {
    let v = crate::limits::parse_json(raw, gw.config.limits.max_json_depth, Wire::Plain)?;
    serde_json::from_value(v).map_err(|e| GatewayError::invalid(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    backend: String,
}

async fn switch(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
    raw: axum::body::Bytes,
) -> GwResult<Json<Value>> {
    gw.require(&caller, "deploy", Some(&model), Wire::Plain)?;
    let s: Switch = body(&gw, &raw)?;
    let v = gw.deployments.switch(&model, &s.backend, &caller.principal.id).await?;
    Ok(Json(serde_json::to_value(v).map_err(GatewayError::internal)?))
}

async fn canary(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
    raw: axum::body::Bytes,
) -> GwResult<Json<Value>> {
    gw.require(&caller, "deploy", Some(&model), Wire::Plain)?;
    let spec: CanarySpec = body(&gw, &raw)?;
    let v = gw.deployments.start_canary(&model, spec, &caller.principal.id).await?;
    Ok(Json(serde_json::to_value(v).map_err(GatewayError::internal)?))
}

async fn rollback(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
) -> GwResult<Json<Value>> {
    gw.require(&caller, "deploy", Some(&model), Wire::Plain)?;
    let v = gw.deployments.rollback(&model, &caller.principal.id).await?;
    Ok(Json(serde_json::to_value(v).map_err(GatewayError::internal)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetShadow {
    backend: Option<String>,
}

async fn shadow(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(model): Path<String>,
    raw: axum::body::Bytes,
) -> GwResult<Json<Value>> {
    gw.require(&caller, "deploy", Some(&model), Wire::Plain)?;
    let s: SetShadow = body(&gw, &raw)?;
    let v = gw
        .deployments
        .set_shadow(&model, s.backend.as_deref(), &caller.principal.id)
        .await?;
    Ok(Json(serde_json::to_value(v).map_err(GatewayError::internal)?))
}
