//! Redaction: mask, keyed hash, and reversible pseudonymisation with a per-request vault.

use crate::config::RedactionConfig;
use crate::GuardError;

/// The HMAC key for `hash` mode: the configured hex key, or 32 random bytes.
pub(crate) fn hash_key(cfg: &RedactionConfig) -> Result<Vec<u8>, GuardError> {
    match &cfg.hash_key {
        Some(h) => {
            let k = hex::decode(h.trim()).map_err(|e| GuardError::Config(format!("redaction.hash_key: {e}")))?;
            if k.len() < 16 {
                return Err(GuardError::Config("redaction.hash_key must be at least 16 bytes (32 hex digits)".to_owned()));
            }
            Ok(k)
        }
        None => {
            use rand_core::RngCore;
            let mut k = vec![0u8; 32];
            rand_core::OsRng.fill_bytes(&mut k);
            Ok(k)
        }
    }
}
