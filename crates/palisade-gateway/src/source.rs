//! Where ONNX backends come from: the registry, through [`ModelSource`]. The binary
//! implements it over `palisade-registry` (every file is decrypted, authenticated and
//! hashed before the gateway sees a byte), so this crate does not depend on the registry.

use palisade_auth::BoxFuture;

/// Which version of a registry model a backend serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Follows an alias (`production`): a promotion moves the backend to the new version.
    Alias(String),
    Version(u64),
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Alias(a) => write!(f, "@{a}"),
            Selector::Version(v) => write!(f, "@{v}"),
        }
    }
}

/// A resolved version: its number, root digest and files (path, size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceVersion {
    pub version: u64,
    pub digest: String,
    pub files: Vec<(String, u64)>,
}

pub trait ModelSource: Send + Sync {
    /// The version `selector` names now.
    fn resolve<'a>(&'a self, model: &'a str, selector: &'a Selector) -> BoxFuture<'a, Result<SourceVersion, String>>;
    /// The verified contents of one file of a version, refused past `max` bytes.
    fn read<'a>(
        &'a self,
        model: &'a str,
        version: u64,
        path: &'a str,
        max: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// Largest ONNX model file the gateway loads.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// The model file of a version: the only `.onnx` file, or `model.onnx` among several.
pub fn pick_model_file(files: &[(String, u64)]) -> Result<&str, String> {
    let onnx: Vec<&str> = files
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| p.to_ascii_lowercase().ends_with(".onnx"))
        .collect();
    match onnx.as_slice() {
        [one] => Ok(one),
        [] => Err("the version has no .onnx file".into()),
        many => many
            .iter()
            .find(|p| p.rsplit('/').next() == Some("model.onnx"))
            .copied()
            .ok_or_else(|| {
                format!(
                    "the version has {} .onnx files; name the one to serve model.onnx",
                    many.len()
                )
            }),
    }
}

/// The data profile of a version: `profile.json` or the only `*.profile.json`.
pub fn pick_profile_file(files: &[(String, u64)]) -> Option<&str> {
    let found: Vec<&str> = files
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| {
            let base = p.rsplit('/').next().unwrap_or(p);
            base == "profile.json" || base.ends_with(".profile.json")
        })
        .collect();
    match found.as_slice() {
        [one] => Some(one),
        many => many
            .iter()
            .find(|p| p.rsplit('/').next() == Some("profile.json"))
            .copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<(String, u64)> {
        names.iter().map(|n| (n.to_string(), 1)).collect()
    }

    #[test]
    fn the_model_and_profile_files_are_found_by_name() {
        assert_eq!(pick_model_file(&files(&["a/x.onnx", "README.md"])), Ok("a/x.onnx"));
        assert_eq!(
            pick_model_file(&files(&["x.onnx", "sub/model.onnx"])),
            Ok("sub/model.onnx")
        );
        assert!(pick_model_file(&files(&["x.onnx", "y.onnx"]))
            .unwrap_err()
            .contains("model.onnx"));
        assert!(pick_model_file(&files(&["x.pt"])).is_err());
        assert_eq!(
            pick_profile_file(&files(&["m.onnx", "iris.profile.json"])),
            Some("iris.profile.json")
        );
        assert_eq!(
            pick_profile_file(&files(&["a.profile.json", "profile.json"])),
            Some("profile.json")
        );
        assert_eq!(pick_profile_file(&files(&["m.onnx"])), None);
    }
}
