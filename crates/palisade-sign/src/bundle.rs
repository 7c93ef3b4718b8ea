//! Sigstore bundle v0.3 (JSON form), the container of every signature Palisade writes and
//! of the reference tool's model signatures. Only the parts used for DSSE signatures are
//! modelled; unknown fields are kept so nothing is lost when a bundle is read and
//! re-written. Reference: sigstore protobuf-specs `sigstore_bundle.proto`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use palisade_core::attest::Envelope;
use serde::{Deserialize, Serialize};

pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The newer spelling of the same version.
const MEDIA_TYPE_V03_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// Bundles larger than this are refused before parsing.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<CertificateChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<RawBytes>,
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChain {
    pub certificates: Vec<RawBytes>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    pub raw_bytes: String,
}

impl RawBytes {
    pub fn from_der(der: &[u8]) -> Self {
        RawBytes {
            raw_bytes: B64.encode(der),
        }
    }

    pub fn der(&self) -> Result<Vec<u8>, BundleError> {
        B64.decode(self.raw_bytes.trim())
            .map_err(|_| BundleError::Invalid("certificate rawBytes is not base64".into()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a Sigstore bundle: {0}")]
    Invalid(String),
    #[error("bundle media type {0:?} is not supported (expected {MEDIA_TYPE_V03})")]
    MediaType(String),
    #[error("the bundle carries no DSSE envelope (message signatures are not model signatures)")]
    NoEnvelope,
    #[error("the bundle is larger than {MAX_BUNDLE_BYTES} bytes")]
    TooLarge,
}

impl Bundle {
    pub fn new(material: VerificationMaterial, envelope: Envelope) -> Self {
        Bundle {
            media_type: MEDIA_TYPE_V03.to_owned(),
            verification_material: material,
            dsse_envelope: Some(envelope),
            message_signature: None,
        }
    }

    /// Parses and checks the media type and the presence of an envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge);
        }
        let b: Bundle = serde_json::from_slice(bytes).map_err(|e| BundleError::Invalid(e.to_string()))?;
        if b.media_type != MEDIA_TYPE_V03 && b.media_type != MEDIA_TYPE_V03_ALT {
            return Err(BundleError::MediaType(b.media_type));
        }
        if b.dsse_envelope.is_none() {
            return Err(BundleError::NoEnvelope);
        }
        Ok(b)
    }

    pub fn envelope(&self) -> Result<&Envelope, BundleError> {
        self.dsse_envelope.as_ref().ok_or(BundleError::NoEnvelope)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}
