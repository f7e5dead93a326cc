//! The model file: safetensors (f32) whose metadata key `iotad` holds [`Meta`] as JSON. A
//! file that is damaged, of another format version, for other features, or whose tensors do
//! not have the shapes its metadata promises is refused with an error that says which.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::{Kernel, Meta, Model, Weights, FORMAT_VERSION};
use crate::window::features::FEATURES;

const META_KEY: &str = "iotad";

/// The default model, built into the binary: `models/iotad.gguf` (Q8_0), which `make model`
/// trains on captures the synthesizer generates (`models/iotad.safetensors`) and quantizes.
pub const BUILT_IN: &[u8] = include_bytes!("../../models/iotad.gguf");

/// The built-in model.
pub fn built_in() -> Result<Model, String> {
    from_bytes(BUILT_IN).map_err(|e| format!("the built-in model: {e}"))
}

/// The model in `path`, or the built-in one.
pub fn load_or_built_in(path: Option<&Path>) -> Result<Model, String> {
    match path {
        Some(p) => load(p),
        None => built_in(),
    }
}

/// The model in `path`, or the built-in one, stepping in f32 when `f32` is set.
pub fn load_for(path: Option<&Path>, f32: bool) -> Result<Model, String> {
    let m = load_or_built_in(path)?;
    if f32 {
        m.with_kernel("f32")
    } else {
        Ok(m)
    }
}

/// Writes the model atomically (a temporary file, then a rename).
pub fn save(model: &Model, path: &Path) -> Result<(), String> {
    let dev = Device::Cpu;
    let mut map = HashMap::new();
    for ((name, shape, _), values) in super::layout(model.meta.sizes)
        .into_iter()
        .zip(model.weights.parts())
    {
        let t = Tensor::from_slice(values, shape, &dev).map_err(|e| e.to_string())?;
        map.insert(name.to_string(), t);
    }
    let meta = serde_json::to_string(&model.meta).map_err(|e| e.to_string())?;
    let bytes = safetensors::serialize(&map, Some(HashMap::from([(META_KEY.to_string(), meta)])))
        .map_err(|e| e.to_string())?;
    crate::files::write_atomically(path, &bytes)
}

/// Reads a model file.
pub fn load(path: &Path) -> Result<Model, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read model {}: {e}", path.display()))?;
    from_bytes(&bytes).map_err(|e| format!("model {}: {e}", path.display()))
}

/// Refuses metadata of another format version or another feature list.
fn check_meta(meta: &Meta) -> Result<(), String> {
    if meta.format_version != FORMAT_VERSION {
        return Err(format!(
            "format version {} (this iotad reads version {FORMAT_VERSION}): retrain it with `iotad train`",
            meta.format_version
        ));
    }
    let names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
    if meta.sizes.features != names.len() || meta.features != names {
        return Err(format!(
            "made for {} features ({}...), this iotad computes {} ({}...): retrain it with `iotad train`",
            meta.features.len(),
            meta.features.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            names.len(),
            names[..3].join(", ")
        ));
    }
    let f = meta.sizes.features;
    if meta.standardizer.mean.len() != f
        || meta.standardizer.std.len() != f
        || meta.residual_scale.len() != f
    {
        return Err("standardization does not match the feature count".into());
    }
    Ok(())
}

/// Reads a model from the bytes of a file: safetensors (f32), or GGUF (quantized).
pub fn from_bytes(bytes: &[u8]) -> Result<Model, String> {
    if bytes.starts_with(super::quant::MAGIC) {
        return super::quant::load_gguf(bytes, check_meta);
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a safetensors model file ({e})"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a safetensors model file ({e})"))?;
    let meta_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or("no iotad metadata: not an iotad model")?;
    let meta: Meta =
        serde_json::from_str(meta_json).map_err(|e| format!("unreadable metadata: {e}"))?;
    check_meta(&meta)?;
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let t = st
            .tensor(name)
            .map_err(|_| format!("tensor {name} is missing"))?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(format!(
                "tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            ));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let mut parts = Vec::new();
    for (name, shape, _) in super::layout(meta.sizes) {
        parts.push(get(name, &shape)?);
    }
    let weights = Weights::from_parts(parts)?;
    Ok(Model {
        kernel: Kernel::f32(&weights, meta.sizes),
        meta,
        weights,
    })
}
