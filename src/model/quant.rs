//! Quantized models: GGUF files whose weight matrices are candle quantized tensors (Q8_0 by
//! default, Q4_0 on request), with the same metadata as the safetensors file. A Q8_0 file
//! steps on its own blocks ([`Kernel::Q8`]); any other is dequantized and steps in f32.

use std::io::Cursor;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::kernel::Q8;
use super::{Kernel, Meta, Model, Weights};

const META_KEY: &str = "iotad.meta";
/// The first four bytes of a GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// The quantization types `iotad quantize` writes.
pub fn parse_type(s: &str) -> Result<GgmlDType, String> {
    match s {
        "q8_0" | "Q8_0" => Ok(GgmlDType::Q8_0),
        "q4_0" | "Q4_0" => Ok(GgmlDType::Q4_0),
        _ => Err(format!("unknown quantization {s:?}: use q8_0 or q4_0")),
    }
}

/// Writes `model` as GGUF with its matrices quantized to `dtype` (biases stay f32).
pub fn save_gguf(model: &Model, dtype: GgmlDType, path: &Path) -> Result<(), String> {
    let err = |e: candle_core::Error| e.to_string();
    let mut qs = Vec::new();
    for ((name, shape, matrix), values) in super::layout(model.meta.sizes)
        .into_iter()
        .zip(model.weights.parts())
    {
        let t = Tensor::from_slice(values, shape, &Device::Cpu).map_err(err)?;
        let q = QTensor::quantize(&t, if matrix { dtype } else { GgmlDType::F32 }).map_err(err)?;
        qs.push((name, q));
    }
    let meta = Value::String(serde_json::to_string(&model.meta).map_err(|e| e.to_string())?);
    let tensors: Vec<(&str, &QTensor)> = qs.iter().map(|(n, q)| (*n, q)).collect();
    let mut buf = Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &[(META_KEY, &meta)], &tensors).map_err(err)?;
    crate::files::write_atomically(path, &buf.into_inner())
}

/// Reads a GGUF model: the weights dequantized, and the Q8_0 blocks for the step when the
/// file is Q8_0. `check` validates the metadata as for safetensors files.
pub fn load_gguf(
    bytes: &[u8],
    check: impl Fn(&Meta) -> Result<(), String>,
) -> Result<Model, String> {
    let mut r = Cursor::new(bytes);
    let content =
        gguf_file::Content::read(&mut r).map_err(|e| format!("not a GGUF model file ({e})"))?;
    let meta_json = match content.metadata.get(META_KEY) {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("no iotad metadata: not an iotad model".into()),
    };
    let meta: Meta =
        serde_json::from_str(&meta_json).map_err(|e| format!("unreadable metadata: {e}"))?;
    check(&meta)?;
    let mut values = Vec::new();
    let mut q8 = Vec::new();
    for (name, shape, matrix) in super::layout(meta.sizes) {
        let q = content
            .tensor(&mut r, name, &Device::Cpu)
            .map_err(|e| format!("tensor {name}: {e}"))?;
        if q.shape().dims() != shape.as_slice() {
            return Err(format!(
                "tensor {name} is {:?}, expected {shape:?}",
                q.shape().dims()
            ));
        }
        if matrix && q.dtype() == GgmlDType::Q8_0 {
            q8.push(Q8::from_qtensor(&q).map_err(|e| format!("tensor {name}: {e}"))?);
        }
        let t = q.dequantize(&Device::Cpu).map_err(|e| e.to_string())?;
        values.push(
            t.flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| e.to_string())?,
        );
    }
    let weights = Weights::from_parts(values)?;
    let kernel = match <[Q8; 5]>::try_from(q8) {
        Ok(q) => Kernel::Q8(Box::new(q)),
        Err(_) => Kernel::f32(&weights, meta.sizes),
    };
    Ok(Model {
        meta,
        weights,
        kernel,
    })
}
