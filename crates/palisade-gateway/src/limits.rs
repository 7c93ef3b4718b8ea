//! Request hardening: bounded bodies read with our own error format, a JSON nesting check
//! that runs before any parser sees the bytes, and load shedding.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;

use crate::error::{GatewayError, Kind, Wire};

/// The deepest nesting of `[`/`{` in `bytes`, outside strings, or an error past `max`.
/// Linear, no allocation; malformed JSON is left to the parser.
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), GatewayError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(GatewayError::new(
                        Kind::Invalid,
                        format!("the JSON body is nested deeper than {max} levels"),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Reads a request body up to `max` bytes.
pub async fn read_body(body: Body, max: usize, wire: Wire) -> Result<Bytes, GatewayError> {
    match axum::body::to_bytes(body, max).await {
        Ok(b) => Ok(b),
        Err(e) => {
            // A length-limit error is the client's; anything else is a broken or stalled
            // body (the idle timeout cuts those off).
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            Err(if too_large {
                GatewayError::new(Kind::TooLarge, format!("the request body is larger than {max} bytes"))
            } else {
                GatewayError::new(Kind::Invalid, "the request body could not be read")
            }
            .wire(wire))
        }
    }
}

/// Parses a bounded JSON body (depth checked first).
pub fn parse_json(bytes: &[u8], max_depth: usize, wire: Wire) -> Result<serde_json::Value, GatewayError> {
    check_depth(bytes, max_depth).map_err(|e| e.wire(wire))?;
    serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::new(Kind::Invalid, format!("the body is not valid JSON: {e}")).wire(wire))
}

/// Requests in flight; beyond the limit new ones are shed.
#[derive(Clone)]
pub struct Shedder(Arc<tokio::sync::Semaphore>);

impl Shedder {
    pub fn new(max: usize) -> Self {
        Shedder(Arc::new(tokio::sync::Semaphore::new(max)))
    }

    /// A permit for one request, or `None` when the gateway is at its limit.
    pub fn try_enter(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let table: &[(&str, usize, bool)] = &[
            ("{}", 1, true),
            ("[[]]", 1, false),
            (r#"{"a": "[[[[[[[["}"#, 1, true),
            (r#"{"a": "\"[[[["}"#, 1, true),
            (r#"{"a": [1, {"b": [2]}]}"#, 4, true),
            (r#"{"a": [1, {"b": [2]}]}"#, 3, false),
            ("]]]]{", 1, true),
        ];
        for (text, max, ok) in table {
            assert_eq!(check_depth(text.as_bytes(), *max).is_ok(), *ok, "{text} (max {max})");
        }
        let deep = "[".repeat(100_000);
        let e = check_depth(deep.as_bytes(), 64).unwrap_err();
        assert!(e.message.contains("64 levels"));
    }
}
