//! Weights-and-graph model formats (not pickle-based): each parser reads structure with
//! bounds and skips tensor data.

pub mod gguf;
pub mod hdf5;
pub mod hfconfig;
pub mod keras;
pub mod onnx;
pub mod pbstrip;
pub mod protobuf;
pub mod safetensors;
pub mod template;
pub mod tensorflow;
