//! Read-only routes in the shape of MLflow's model registry REST API (`/api/2.0/mlflow/…`),
//! so MLflow clients (`MlflowClient(registry_uri=…)` with `MLFLOW_TRACKING_TOKEN` set to a
//! Palisade credential) can list and look up registered models, versions and aliases.
//! Writes go through Palisade's own API, where gates and signatures apply.
//!
//! Field names and error codes follow MLflow's `model_registry.proto` and
//! `databricks.proto` (`RESOURCE_DOES_NOT_EXIST`, `INVALID_PARAMETER_VALUE`, …).
//! Timestamps are milliseconds since 1970; versions are strings; `current_stage` is
//! always `None` (Palisade has aliases, not stages); `source` is `palisade://NAME/VERSION`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::Action;
use crate::meta::{ModelVersion, RegisteredModel};
use crate::server::{ApiError, Caller, Registry};

/// Largest page of registered models a search returns (MLflow's threshold).
const MAX_MODELS: usize = 1000;
/// Largest page of versions a search returns (MLflow's default page size).
const MAX_VERSIONS: usize = 10_000;

/// An MLflow-shaped error: `{"error_code": …, "message": …}`.
#[derive(Debug)]
pub struct MlflowError(StatusCode, &'static str, String);

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error_code": self.1, "message": self.2 }))).into_response()
    }
}

impl From<ApiError> for MlflowError {
    fn from(e: ApiError) -> Self {
        let code = match e.0 {
            StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
            StatusCode::BAD_REQUEST => "INVALID_PARAMETER_VALUE",
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
            StatusCode::FORBIDDEN => "PERMISSION_DENIED",
            StatusCode::CONFLICT => "RESOURCE_ALREADY_EXISTS",
            _ => "INTERNAL_ERROR",
        };
        MlflowError(e.0, code, e.1)
    }
}

impl From<crate::meta::MetaError> for MlflowError {
    fn from(e: crate::meta::MetaError) -> Self {
        ApiError::from(e).into()
    }
}

fn invalid(msg: impl Into<String>) -> MlflowError {
    MlflowError(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", msg.into())
}

type Result<T> = std::result::Result<T, MlflowError>;

fn millis(rfc3339: &str) -> u64 {
    palisade_core::time::parse_rfc3339(rfc3339).map_or(0, |s| s * 1000)
}

fn tag_list(tags: std::collections::BTreeMap<String, String>) -> Value {
    Value::Array(tags.into_iter().map(|(k, v)| json!({ "key": k, "value": v })).collect())
}

async fn version_json(reg: &Registry, v: &ModelVersion) -> Result<Value> {
    let aliases: Vec<String> = reg
        .meta
        .aliases(&v.model)
        .await?
        .into_iter()
        .filter(|(_, n)| *n == v.version)
        .map(|(a, _)| a)
        .collect();
    let created = millis(&v.created_at);
    Ok(json!({
        "name": v.model,
        "version": v.version.to_string(),
        "creation_timestamp": created,
        "last_updated_timestamp": created,
        "user_id": v.created_by,
        "current_stage": "None",
        "description": "",
        "source": format!("palisade://{}/{}", v.model, v.version),
        "run_id": v.lineage.source_run.clone().unwrap_or_default(),
        "status": "READY",
        "tags": tag_list(reg.meta.tags(&v.model, Some(v.version)).await?),
        "aliases": aliases,
    }))
}

async fn model_json(reg: &Registry, m: &RegisteredModel) -> Result<Value> {
    let versions = reg.meta.list_versions(&m.name).await?;
    let mut latest = Vec::new();
    let mut updated = millis(&m.created_at);
    if let Some(n) = versions.last() {
        let v = reg.meta.get_version(&m.name, *n).await?;
        updated = updated.max(millis(&v.created_at));
        latest.push(version_json(reg, &v).await?);
    }
    let aliases: Vec<Value> = reg
        .meta
        .aliases(&m.name)
        .await?
        .into_iter()
        .map(|(a, n)| json!({ "alias": a, "version": n.to_string() }))
        .collect();
    Ok(json!({
        "name": m.name,
        "creation_timestamp": millis(&m.created_at),
        "last_updated_timestamp": updated,
        "user_id": m.created_by,
        "description": m.description,
        "latest_versions": latest,
        "tags": tag_list(reg.meta.tags(&m.name, None).await?),
        "aliases": aliases,
    }))
}

/// One condition of a search filter.
enum Clause {
    /// `name = 'x'`, `name LIKE 'pat'`, `name ILIKE 'pat'`.
    Name { op: &'static str, value: String },
    /// ``tag.key = 'v'``, ``tags.`key` != 'v'``.
    Tag { key: String, equal: bool, value: String },
}

/// The subset of MLflow's search grammar Palisade answers: conditions joined by `AND`,
/// each on the name (`=`, `LIKE`, `ILIKE`) or a tag (`=`, `!=`). MLflow 3 clients add
/// ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every model search.
struct Filter(Vec<Clause>);

fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    let quoted =
        v.len() >= 2 && ((v.starts_with('\'') && v.ends_with('\'')) || (v.starts_with('"') && v.ends_with('"')));
    let inner = v.get(1..v.len().saturating_sub(1))?;
    (quoted && !inner.contains(&v[..1])).then(|| inner.to_owned())
}

fn split_and(f: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let lower = f.to_ascii_lowercase();
    let mut start = 0;
    let mut in_quote: Option<char> = None;
    let bytes = f.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        match in_quote {
            Some(q) if c == q => in_quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => in_quote = Some(c),
            None if lower[i..].starts_with(" and ") => {
                out.push(&f[start..i]);
                start = i + 5;
                i += 4;
            }
            None => {}
        }
        i += 1;
    }
    out.push(&f[start..]);
    out
}

fn parse_filter(filter: Option<&str>) -> Result<Filter> {
    let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(Filter(Vec::new()));
    };
    if f.len() > 4096 {
        return Err(invalid("filter longer than 4096 bytes"));
    }
    let unsupported = |c: &str| {
        invalid(format!(
            "unsupported filter condition {c:?}: Palisade accepts name = / LIKE / ILIKE '…' and tag.key = / != '…', joined by AND"
        ))
    };
    let mut clauses = Vec::new();
    for c in split_and(f) {
        let c = c.trim();
        if let Some(rest) = c.strip_prefix("name") {
            let rest = rest.trim_start();
            let (op, value) = if let Some(v) = rest.strip_prefix('=') {
                ("=", v)
            } else if rest.len() > 5 && rest[..5].eq_ignore_ascii_case("ilike") {
                ("ilike", &rest[5..])
            } else if rest.len() > 4 && rest[..4].eq_ignore_ascii_case("like") {
                ("like", &rest[4..])
            } else {
                return Err(unsupported(c));
            };
            let value = unquote(value).ok_or_else(|| unsupported(c))?;
            clauses.push(Clause::Name { op, value });
        } else if let Some(rest) = c.strip_prefix("tags.").or_else(|| c.strip_prefix("tag.")) {
            let (key, rest) = if let Some(r) = rest.strip_prefix('`') {
                let end = r.find('`').ok_or_else(|| unsupported(c))?;
                (r[..end].to_owned(), &r[end + 1..])
            } else {
                let end = rest.find([' ', '=', '!']).ok_or_else(|| unsupported(c))?;
                (rest[..end].to_owned(), &rest[end..])
            };
            let rest = rest.trim_start();
            let (equal, value) = if let Some(v) = rest.strip_prefix("!=") {
                (false, v)
            } else if let Some(v) = rest.strip_prefix('=') {
                (true, v)
            } else {
                return Err(unsupported(c));
            };
            let value = unquote(value).ok_or_else(|| unsupported(c))?;
            clauses.push(Clause::Tag { key, equal, value });
        } else {
            return Err(unsupported(c));
        }
    }
    Ok(Filter(clauses))
}

impl Filter {
    fn needs_tags(&self) -> bool {
        self.0.iter().any(|c| matches!(c, Clause::Tag { .. }))
    }

    fn matches(&self, name: &str, tags: &std::collections::BTreeMap<String, String>) -> bool {
        self.0.iter().all(|c| match c {
            Clause::Name { op: "=", value } => name == value,
            Clause::Name { op: "like", value } => like(name.as_bytes(), value.as_bytes()),
            Clause::Name { value, .. } => like(name.to_lowercase().as_bytes(), value.to_lowercase().as_bytes()),
            // A missing tag equals nothing and so differs from everything (MLflow clients
            // rely on `!=` matching models without the tag).
            Clause::Tag { key, equal, value } => match tags.get(key) {
                Some(v) => (v == value) == *equal,
                None => !*equal,
            },
        })
    }
}

/// SQL LIKE matching (`%` any run, `_` one character), iterative with backtracking to the
/// last `%` so it is linear-ish and never recursive.
fn like(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'_' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'%' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'%')
}

#[derive(Deserialize, utoipa::IntoParams)]
struct NameQuery {
    name: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct VersionQuery {
    name: String,
    version: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct AliasQuery {
    name: String,
    alias: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct SearchQuery {
    filter: Option<String>,
    max_results: Option<usize>,
    page_token: Option<String>,
}

fn page(q: &SearchQuery, default: usize, limit: usize) -> Result<(usize, usize)> {
    let max = q.max_results.unwrap_or(default);
    if max == 0 || max > limit {
        return Err(invalid(format!("max_results must be between 1 and {limit}")));
    }
    let offset = match &q.page_token {
        None => 0,
        Some(t) if t.is_empty() => 0,
        Some(t) => t.parse().map_err(|_| invalid("invalid page_token"))?,
    };
    Ok((offset, max))
}

/// The page of `matches` at `offset` and the token of the next page, if any. Only the page
/// is turned into JSON (each item costs queries), never everything that matched.
fn paged<T>(matches: Vec<T>, offset: usize, max: usize) -> (Vec<T>, Option<String>) {
    let next = (offset.saturating_add(max) < matches.len()).then(|| (offset + max).to_string());
    (matches.into_iter().skip(offset).take(max).collect(), next)
}

fn page_body(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut body = json!({ key: items });
    if let Some(token) = next {
        body["next_page_token"] = json!(token);
    }
    body
}

fn version_number(v: &str) -> Result<u64> {
    v.parse()
        .map_err(|_| invalid(format!("version must be a number, got {v:?}")))
}

#[utoipa::path(get, path = "/api/2.0/mlflow/registered-models/get", tag = "mlflow", params(NameQuery), responses((status = 200, description = "`{registered_model}`"), (status = 404, description = "`{error_code: RESOURCE_DOES_NOT_EXIST}`")))]
async fn get_registered_model(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<NameQuery>,
) -> Result<Response> {
    reg.require(&caller, Action::Read, Some(&q.name), &format!("model/{}", q.name))
        .await?;
    let m = reg.meta.get_model(&q.name).await?;
    Ok(Json(json!({ "registered_model": model_json(&reg, &m).await? })).into_response())
}

#[utoipa::path(get, path = "/api/2.0/mlflow/registered-models/search", tag = "mlflow", params(SearchQuery), responses((status = 200, description = "`{registered_models, next_page_token?}`: the models the caller may read")))]
async fn search_registered_models(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Response> {
    let filter = parse_filter(q.filter.as_deref())?;
    let (offset, max) = page(&q, 100, MAX_MODELS)?;
    let mut matches = Vec::new();
    for m in reg.meta.list_models().await? {
        if !reg.allowed(&caller.0, Action::Read, Some(&m.name)).allowed {
            continue;
        }
        let tags = if filter.needs_tags() {
            reg.meta.tags(&m.name, None).await?
        } else {
            Default::default()
        };
        if filter.matches(&m.name, &tags) {
            matches.push(m);
        }
    }
    let (items, next) = paged(matches, offset, max);
    let mut out = Vec::with_capacity(items.len());
    for m in &items {
        out.push(model_json(&reg, m).await?);
    }
    Ok(Json(page_body("registered_models", out, next)).into_response())
}

#[utoipa::path(get, path = "/api/2.0/mlflow/model-versions/get", tag = "mlflow", params(VersionQuery), responses((status = 200, description = "`{model_version}`"), (status = 404, description = "`{error_code: RESOURCE_DOES_NOT_EXIST}`")))]
async fn get_model_version(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<VersionQuery>,
) -> Result<Response> {
    reg.require(
        &caller,
        Action::Read,
        Some(&q.name),
        &format!("model/{}@{}", q.name, q.version),
    )
    .await?;
    let v = reg.meta.get_version(&q.name, version_number(&q.version)?).await?;
    Ok(Json(json!({ "model_version": version_json(&reg, &v).await? })).into_response())
}

#[utoipa::path(get, path = "/api/2.0/mlflow/model-versions/search", tag = "mlflow", params(SearchQuery), responses((status = 200, description = "`{model_versions, next_page_token?}`")))]
async fn search_model_versions(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Response> {
    let filter = parse_filter(q.filter.as_deref())?;
    let (offset, max) = page(&q, MAX_VERSIONS, MAX_VERSIONS)?;
    let mut matches = Vec::new();
    for m in reg.meta.list_models().await? {
        if !reg.allowed(&caller.0, Action::Read, Some(&m.name)).allowed {
            continue;
        }
        for n in reg.meta.list_versions(&m.name).await?.into_iter().rev() {
            let tags = if filter.needs_tags() {
                reg.meta.tags(&m.name, Some(n)).await?
            } else {
                Default::default()
            };
            if filter.matches(&m.name, &tags) {
                matches.push((m.name.clone(), n));
            }
        }
    }
    let (items, next) = paged(matches, offset, max);
    let mut out = Vec::with_capacity(items.len());
    for (name, n) in &items {
        let v = reg.meta.get_version(name, *n).await?;
        out.push(version_json(&reg, &v).await?);
    }
    Ok(Json(page_body("model_versions", out, next)).into_response())
}

#[utoipa::path(get, path = "/api/2.0/mlflow/registered-models/alias", tag = "mlflow", params(AliasQuery), responses((status = 200, description = "`{model_version}` the alias points at"), (status = 404, description = "`{error_code: RESOURCE_DOES_NOT_EXIST}`")))]
async fn get_model_version_by_alias(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<AliasQuery>,
) -> Result<Response> {
    reg.require(
        &caller,
        Action::Read,
        Some(&q.name),
        &format!("model/{}@{}", q.name, q.alias),
    )
    .await?;
    let n = reg.meta.resolve_alias(&q.name, &q.alias).await?;
    let v = reg.meta.get_version(&q.name, n).await?;
    Ok(Json(json!({ "model_version": version_json(&reg, &v).await? })).into_response())
}

#[utoipa::path(get, path = "/api/2.0/mlflow/model-versions/get-download-uri", tag = "mlflow", params(VersionQuery), responses((status = 200, description = "`{artifact_uri}`: `palisade://NAME/VERSION` (fetch it with `palisade pull`)")))]
async fn get_download_uri(
    State(reg): State<Arc<Registry>>,
    caller: Caller,
    Query(q): Query<VersionQuery>,
) -> Result<Response> {
    reg.require(
        &caller,
        Action::Read,
        Some(&q.name),
        &format!("model/{}@{}", q.name, q.version),
    )
    .await?;
    let n = version_number(&q.version)?;
    reg.meta.get_version(&q.name, n).await?;
    Ok(Json(json!({ "artifact_uri": format!("palisade://{}/{n}", q.name) })).into_response())
}

pub(crate) fn routes() -> OpenApiRouter<Arc<Registry>> {
    OpenApiRouter::new()
        .routes(routes!(get_registered_model))
        .routes(routes!(search_registered_models))
        .routes(routes!(get_model_version))
        .routes(routes!(search_model_versions))
        .routes(routes!(get_model_version_by_alias))
        .routes(routes!(get_download_uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        for (s, p, want) in [
            ("fraud-detector", "fraud%", true),
            ("fraud-detector", "%detect%", true),
            ("fraud-detector", "fraud_detector", true),
            ("fraud-detector", "fraud", false),
            ("fraud", "%%%", true),
            ("", "%", true),
            ("abc", "a%c%", true),
            ("abc", "a%d", false),
        ] {
            assert_eq!(like(s.as_bytes(), p.as_bytes()), want, "{s} LIKE {p}");
        }
    }

    #[test]
    fn filters() {
        let tags: std::collections::BTreeMap<String, String> = [
            ("team".to_owned(), "risk".to_owned()),
            ("mlflow.prompt.is_prompt".to_owned(), "false".to_owned()),
        ]
        .into();
        let none = Default::default();
        let ok = |f: &str, n: &str, t: &std::collections::BTreeMap<String, String>| {
            parse_filter(Some(f)).map(|m| m.matches(n, t)).ok()
        };
        assert_eq!(ok("name = 'a'", "a", &none), Some(true));
        assert_eq!(ok("name='a'", "b", &none), Some(false));
        assert_eq!(ok("name LIKE 'fr%'", "fraud", &none), Some(true));
        assert_eq!(ok("name ILIKE 'FR%'", "fraud", &none), Some(true));
        assert_eq!(ok("name like 'FR%'", "fraud", &none), Some(false));
        assert_eq!(ok("tags.team = 'risk'", "m", &tags), Some(true));
        assert_eq!(ok("tag.team != 'risk'", "m", &tags), Some(false));
        assert_eq!(ok("tag.`mlflow.prompt.is_prompt` != 'true'", "m", &tags), Some(true));
        assert_eq!(ok("name LIKE 'm%' AND tag.`team` = 'risk'", "m", &tags), Some(true));
        assert_eq!(
            ok("name = 'a and b' AND tags.team = 'risk'", "a and b", &tags),
            Some(true)
        );
        assert_eq!(
            ok("tags.team = 'risk'", "m", &none),
            Some(false),
            "a missing tag equals nothing"
        );
        assert_eq!(
            ok("tags.team != 'risk'", "m", &none),
            Some(true),
            "and differs from everything"
        );
        assert!(parse_filter(Some("run_id = 'x'")).is_err());
        assert!(parse_filter(Some("name = a")).is_err());
        assert!(parse_filter(Some("name = 'a' OR name = 'b'")).is_err());
        assert!(parse_filter(None).unwrap().matches("anything", &none));
    }
}
