//! Containers of the pickle family: zip (PyTorch, TorchScript, `.npz`), NumPy `.npy`,
//! tar (legacy PyTorch) and compressed streams (joblib).

pub mod compressed;
pub mod npy;
pub mod tar;
pub mod zip;
