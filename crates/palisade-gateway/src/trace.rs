//! Optional OpenTelemetry traces: one server span per request, continued from an incoming
//! W3C `traceparent` header (and passed on to LLM upstreams with this gateway's span as
//! the parent), exported in batches as OTLP/HTTP JSON (`POST {otlp_endpoint}`, the JSON
//! mapping of `ExportTraceServiceRequest`: hex trace and span ids, 64-bit integers as
//! decimal strings, enums as numbers).
//!
//! Export never slows a request: spans go through a bounded queue (full: dropped and
//! counted) to one background task that posts every `flush_ms` or `batch` spans.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::upstream::HttpClient;

/// `[gateway.traces]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`; none: no traces.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded (0-1). A request with a `traceparent` follows its
    /// sampled flag instead.
    #[serde(default = "d_ratio")]
    pub sample_ratio: f64,
    /// `service.name` of the exported resource.
    #[serde(default = "d_service")]
    pub service_name: String,
    /// Spans per export request at most.
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// How often queued spans are exported, in milliseconds.
    #[serde(default = "d_flush")]
    pub flush_ms: u64,
}

fn d_ratio() -> f64 {
    1.0
}
fn d_service() -> String {
    "palisade-gateway".into()
}
fn d_batch() -> usize {
    512
}
fn d_flush() -> u64 {
    1000
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            otlp_endpoint: None,
            sample_ratio: d_ratio(),
            service_name: d_service(),
            batch: d_batch(),
            flush_ms: d_flush(),
        }
    }
}

impl TraceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!("traces.sample_ratio must be 0-1, got {}", self.sample_ratio));
        }
        if !(1..=10_000).contains(&self.batch) || !(10..=60_000).contains(&self.flush_ms) {
            return Err("traces.batch must be 1-10000 and traces.flush_ms 10-60000".into());
        }
        if let Some(e) = &self.otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!("traces.otlp_endpoint must be http(s)://…, got {e:?}"));
            }
        }
        Ok(())
    }
}

/// A request's place in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub sampled: bool,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    while b.iter().all(|&x| x == 0) {
        for x in &mut b {
            *x = fastrand::u8(..);
        }
    }
    b
}

/// `N` bytes as lower-case hex (W3C Trace Context allows no upper case).
fn hex_field<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// An id: hex, and not all zeros.
fn id<const N: usize>(s: &str) -> Option<[u8; N]> {
    hex_field::<N>(s).filter(|b| b.iter().any(|&x| x != 0))
}

impl SpanContext {
    /// The span of a request carrying `traceparent` (if valid), else of a new trace
    /// sampled at `ratio`.
    pub fn start(traceparent: Option<&str>, ratio: f64) -> SpanContext {
        if let Some((trace_id, parent, flags)) = traceparent.and_then(parse_traceparent) {
            return SpanContext {
                trace_id,
                span_id: random(),
                parent: Some(parent),
                sampled: flags & 1 == 1,
            };
        }
        SpanContext {
            trace_id: random(),
            span_id: random(),
            parent: None,
            sampled: fastrand::f64() < ratio,
        }
    }

    /// The `traceparent` to send downstream: this span as the parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            u8::from(self.sampled)
        )
    }
}

/// `version-traceid-parentid-flags`: version `ff` is invalid; version `00` has exactly
/// these four fields, a later version may append more.
fn parse_traceparent(h: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let parts: Vec<&str> = h.trim().split('-').collect();
    if parts.len() < 4 {
        return None;
    }
    let version = hex_field::<1>(parts[0])?[0];
    if version == 0xff || (version == 0 && parts.len() != 4) {
        return None;
    }
    Some((id::<16>(parts[1])?, id::<8>(parts[2])?, hex_field::<1>(parts[3])?[0]))
}

/// A finished span.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub ctx: SpanContext,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub status: u16,
    pub attributes: Vec<(&'static str, String)>,
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string()
}

impl SpanRecord {
    fn to_otlp(&self) -> Value {
        let mut attrs: Vec<Value> = self
            .attributes
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": { "stringValue": v } }))
            .collect();
        attrs.push(json!({ "key": "http.response.status_code", "value": { "intValue": self.status.to_string() } }));
        let mut span = json!({
            "traceId": hex::encode(self.ctx.trace_id),
            "spanId": hex::encode(self.ctx.span_id),
            "name": self.name,
            "kind": 2, // SPAN_KIND_SERVER
            "startTimeUnixNano": nanos(self.start),
            "endTimeUnixNano": nanos(self.end),
            "attributes": attrs,
            // Server spans: 5xx is an error, anything else leaves the status unset.
            "status": { "code": if self.status >= 500 { 2 } else { 0 } },
        });
        if let Some(p) = self.ctx.parent {
            span["parentSpanId"] = json!(hex::encode(p));
        }
        span
    }
}

/// The exporter.
pub struct Tracer {
    pub config: TraceConfig,
    tx: tokio::sync::mpsc::Sender<SpanRecord>,
    pub dropped: Arc<AtomicU64>,
    pub exported: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

impl Tracer {
    /// Starts the export task (needs a Tokio runtime); `None` without an endpoint.
    pub fn spawn(config: &TraceConfig, client: HttpClient) -> Option<Arc<Tracer>> {
        let endpoint = config.otlp_endpoint.clone()?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<SpanRecord>(config.batch * 4);
        let (dropped, exported, failed) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (e, f) = (exported.clone(), failed.clone());
        let (batch, every, service) = (
            config.batch,
            Duration::from_millis(config.flush_ms),
            config.service_name.clone(),
        );
        tokio::spawn(async move {
            let mut spans = Vec::with_capacity(batch);
            let mut last_logged: Option<std::time::Instant> = None;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Collect until a batch is full or the interval ends, then export once.
                let room = batch - spans.len();
                let closed = tokio::select! {
                    n = rx.recv_many(&mut spans, room) => {
                        if n > 0 && spans.len() < batch {
                            continue;
                        }
                        n == 0
                    }
                    _ = tick.tick() => false,
                };
                if spans.is_empty() {
                    if closed {
                        return;
                    }
                    continue;
                }
                let body = json!({ "resourceSpans": [{
                    "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": service } }] },
                    "scopeSpans": [{
                        "scope": { "name": "palisade-gateway", "version": env!("CARGO_PKG_VERSION") },
                        "spans": spans.iter().map(SpanRecord::to_otlp).collect::<Vec<_>>(),
                    }],
                }]});
                let count = spans.len() as u64;
                spans.clear();
                let result = post(&client, &endpoint, body.to_string()).await;
                match result {
                    Ok(()) => {
                        e.fetch_add(count, Ordering::Relaxed);
                    }
                    Err(why) => {
                        f.fetch_add(count, Ordering::Relaxed);
                        if last_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            last_logged = Some(std::time::Instant::now());
                            tracing::warn!(endpoint = %endpoint, spans = count, error = %why, "trace export failed (spans dropped)");
                        }
                    }
                }
                if closed {
                    return;
                }
            }
        });
        Some(Arc::new(Tracer {
            config: config.clone(),
            tx,
            dropped,
            exported,
            failed,
        }))
    }

    /// Queues a finished span (dropped, and counted, when the queue is full).
    pub fn record(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn post(client: &HttpClient, endpoint: &str, body: String) -> Result<(), String> {
    let req = hyper::Request::post(endpoint)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
        Err(_) => Err("timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(r)) if r.status().is_success() => Ok(()),
        Ok(Ok(r)) => Err(format!("collector answered {}", r.status())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_follows_the_w3c_rules() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = SpanContext::start(Some(ok), 0.0);
        assert_eq!(hex::encode(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent.map(hex::encode).as_deref(), Some("00f067aa0ba902b7"));
        assert!(c.sampled, "the parent's sampled flag wins over the ratio");
        assert_ne!(c.span_id, c.parent.unwrap());
        let down = c.traceparent();
        assert!(down.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && down.ends_with("-01"));
        assert_eq!(parse_traceparent(&down).unwrap().1, c.span_id);
        // A later version may carry more fields; an unsampled parent is followed.
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra").is_some());
        assert!(!SpanContext::start(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), 1.0).sampled);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
            let c = SpanContext::start(Some(bad), 1.0);
            assert!(c.parent.is_none() && c.sampled, "{bad}: a new trace");
        }
        assert!(!SpanContext::start(None, 0.0).sampled);
    }
}
