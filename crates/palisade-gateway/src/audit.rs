//! Audit events from the gateway into the registry's tamper-evident log.
//!
//! Changes (deployment switches, canary steps, rollbacks, models loaded) are recorded
//! before they are acknowledged ([`Auditor::record`]). Refusals (unauthenticated,
//! forbidden, rate-limited, blocked by a guardrail) can arrive at flood rates, so they go
//! through a bounded queue written in batches ([`Auditor::refusal`]); if the queue is full
//! the refusal is counted, and the count is written as one `audit-overflow` event as soon
//! as there is room — the log says how many refusals it did not record individually.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use palisade_auth::BoxFuture;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

/// One audit event, before the log assigns its sequence number and time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

impl AuditRecord {
    pub fn new(actor: &str, action: &str, target: &str, outcome: &str, detail: serde_json::Value) -> Self {
        AuditRecord {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.chars().take(256).collect(),
            outcome: outcome.to_owned(),
            detail,
        }
    }
}

/// Where events go (the registry's log, composed in by the binary).
pub trait AuditSink: Send + Sync {
    /// Appends the events in order, all in one transaction where the store allows.
    fn append<'a>(&'a self, events: Vec<AuditRecord>) -> BoxFuture<'a, Result<(), String>>;
}

/// Keeps events in memory (tests, and a gateway started without a registry).
#[derive(Default)]
pub struct MemorySink(pub parking_lot::Mutex<Vec<AuditRecord>>);

impl AuditSink for MemorySink {
    fn append<'a>(&'a self, events: Vec<AuditRecord>) -> BoxFuture<'a, Result<(), String>> {
        self.0.lock().extend(events);
        Box::pin(async { Ok(()) })
    }
}

const QUEUE: usize = 16_384;
const BATCH: usize = 512;

pub struct Auditor {
    sink: Arc<dyn AuditSink>,
    tx: mpsc::Sender<AuditRecord>,
    dropped: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Auditor {
    /// Starts the background writer (needs a Tokio runtime).
    pub fn spawn(sink: Arc<dyn AuditSink>) -> Arc<Auditor> {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, d, f) = (sink.clone(), dropped.clone(), failed.clone());
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let lost = d.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    batch.push(AuditRecord::new(
                        "palisade/gateway",
                        "audit-overflow",
                        "gateway",
                        "dropped",
                        json!({ "refusals_not_recorded": lost }),
                    ));
                }
                let n = batch.len() as u64;
                let events = std::mem::take(&mut batch);
                let mut result = Err(String::new());
                for attempt in 0..3u32 {
                    result = s.append(events.clone()).await;
                    if result.is_ok() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
                if let Err(e) = result {
                    f.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(events = n, error = %e, "audit log unavailable: refusal events lost");
                }
            }
        });
        Arc::new(Auditor {
            sink,
            tx,
            dropped,
            failed,
        })
    }

    /// Records a change; the caller acknowledges the change only if this succeeds.
    pub async fn record(&self, event: AuditRecord) -> Result<(), String> {
        self.sink.append(vec![event]).await
    }

    /// Queues a refusal (never blocks the request).
    pub fn refusal(&self, event: AuditRecord) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refusals that could not be written (the log was down), since start.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until every queued refusal has been handed to the sink.
    pub async fn flush(&self) {
        for _ in 0..200 {
            if self.tx.capacity() == self.tx.max_capacity() {
                // The writer may still be inside `append`; one more yield lets it finish.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_arrive_in_order_and_an_overflow_is_counted() {
        let sink = Arc::new(MemorySink::default());
        let a = Auditor::spawn(sink.clone());
        for i in 0..10 {
            a.refusal(AuditRecord::new("k", "infer", &format!("m{i}"), "denied", json!({})));
        }
        a.flush().await;
        let got: Vec<String> = sink.0.lock().iter().map(|e| e.target.clone()).collect();
        assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());

        // A sink that never finishes fills the queue; what does not fit is counted.
        struct Stuck;
        impl AuditSink for Stuck {
            fn append<'a>(&'a self, _: Vec<AuditRecord>) -> BoxFuture<'a, Result<(), String>> {
                Box::pin(std::future::pending())
            }
        }
        let b = Auditor::spawn(Arc::new(Stuck));
        for _ in 0..(QUEUE + BATCH + 100) {
            b.refusal(AuditRecord::new("k", "infer", "m", "denied", json!({})));
        }
        let dropped = b.dropped.load(Ordering::Relaxed);
        assert!((100..=(BATCH as u64 + 100)).contains(&dropped), "{dropped}");
    }

    #[test]
    fn targets_are_bounded() {
        let r = AuditRecord::new("a", "b", &"x".repeat(10_000), "c", json!(null));
        assert_eq!(r.target.len(), 256);
    }
}
