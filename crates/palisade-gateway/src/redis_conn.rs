//! One Redis connection per gateway, shared by the rate limiter and the deployment state
//! store: made on first use (so a gateway starts while Redis is down), retried at most
//! once a second while Redis is unreachable, and every command bounded by a timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

pub struct RedisConn {
    client: redis::Client,
    conn: parking_lot::RwLock<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<Option<Instant>>,
    timeout: Duration,
    /// The first connection's driver task runs here, not on the serve thread that
    /// happens to make it. (After a lost connection, the `ConnectionManager` reconnects
    /// from the task that saw the failure — with per-thread serving, a serve thread,
    /// which lives until the process ends, so the connection keeps working; routing
    /// every command through this runtime would cost a hand-off per command.)
    background: crate::server::Background,
}

impl RedisConn {
    /// Parses the URL; nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
        Ok(RedisConn {
            client,
            conn: parking_lot::RwLock::new(None),
            connecting: tokio::sync::Mutex::new(None),
            timeout: Duration::from_millis(500),
            background: crate::server::Background::capture(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        if let Some(c) = self.conn.read().clone() {
            return Ok(c);
        }
        let mut last = self.connecting.lock().await;
        if let Some(c) = self.conn.read().clone() {
            return Ok(c);
        }
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return Err("not connected (retrying)".into());
        }
        *last = Some(Instant::now());
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let connect = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        );
        let c = self
            .background
            .run(connect)
            .await?
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        *self.conn.write() = Some(c.clone());
        Ok(c)
    }

    /// Runs one command (or script, or pipeline) on the shared connection, bounded by the
    /// timeout.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }
}
