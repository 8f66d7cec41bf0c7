//! A small reader for the safetensors format (F32 tensors only).
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON mapping each tensor name
//! to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the end of the header),
//! then the raw little-endian tensor data. Every offset and shape is checked against the file
//! size before any byte is read, so a truncated or corrupt file is an error, never a panic.

use crate::error::EmbedError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One entry of the safetensors header.
#[derive(Debug, Deserialize)]
struct TensorInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// A safetensors file read into memory, with its header parsed and validated.
pub(crate) struct SafeTensors {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

impl SafeTensors {
    /// Reads and validates `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        Self::from_bytes(path, bytes)
    }

    /// Parses an in-memory safetensors image; `path` is used in error messages only.
    pub(crate) fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, EmbedError> {
        let len_bytes: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                EmbedError::invalid(
                    path,
                    format!(
                        "file is {} bytes; expected a safetensors file (8-byte header length first)",
                        bytes.len()
                    ),
                )
            })?;
        let header_len = u64::from_le_bytes(len_bytes);
        let data_start = usize::try_from(header_len)
            .ok()
            .and_then(|n| n.checked_add(8))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                EmbedError::invalid(
                    path,
                    format!(
                        "safetensors header claims {header_len} bytes but the file has only {} \
                         (truncated or not a safetensors file)",
                        bytes.len()
                    ),
                )
            })?;
        let mut raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..data_start]).map_err(|source| EmbedError::Json {
                path: path.to_path_buf(),
                expected: "a safetensors header: an object of {dtype, shape, data_offsets}",
                source,
            })?;
        raw.remove("__metadata__");
        let data_len = bytes.len() - data_start;
        let mut tensors = HashMap::with_capacity(raw.len());
        for (name, value) in raw {
            let info: TensorInfo =
                serde_json::from_value(value).map_err(|source| EmbedError::Json {
                    path: path.to_path_buf(),
                    expected: "each tensor entry to have dtype, shape and data_offsets",
                    source,
                })?;
            let [begin, end] = info.data_offsets;
            if begin > end || end > data_len {
                return Err(EmbedError::invalid(
                    path,
                    format!(
                        "tensor {name}: data_offsets [{begin}, {end}] fall outside the {data_len} \
                         data bytes (truncated file?)"
                    ),
                ));
            }
            tensors.insert(name, info);
        }
        Ok(SafeTensors {
            path: path.to_path_buf(),
            bytes,
            data_start,
            tensors,
        })
    }

    /// Returns the F32 tensor `name`, checking that its shape is exactly `shape`.
    pub(crate) fn f32_tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let info = self.tensors.get(name).ok_or_else(|| {
            EmbedError::invalid(
                &self.path,
                format!("missing tensor {name} (expected shape {shape:?}, F32)"),
            )
        })?;
        if info.dtype != "F32" {
            return Err(EmbedError::invalid(
                &self.path,
                format!("tensor {name} has dtype {}; expected F32", info.dtype),
            ));
        }
        if info.shape != shape {
            return Err(EmbedError::invalid(
                &self.path,
                format!(
                    "tensor {name} has shape {:?}; expected {shape:?}",
                    info.shape
                ),
            ));
        }
        let count: usize = shape.iter().product();
        let [begin, end] = info.data_offsets;
        if end - begin != count * 4 {
            return Err(EmbedError::invalid(
                &self.path,
                format!(
                    "tensor {name}: {} data bytes for shape {shape:?}; expected {} (4 bytes per F32)",
                    end - begin,
                    count * 4
                ),
            ));
        }
        let data = &self.bytes[self.data_start + begin..self.data_start + end];
        Ok(data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_a_small_tensor() {
        let data: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let st = SafeTensors::from_bytes(
            Path::new("t.safetensors"),
            image(
                r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &data,
            ),
        )
        .unwrap();
        assert_eq!(st.f32_tensor("w", &[2]).unwrap(), vec![1.0, -2.5]);
        let err = st.f32_tensor("w", &[1, 2]).unwrap_err().to_string();
        assert!(err.contains("expected [1, 2]"), "{err}");
        let err = st.f32_tensor("v", &[2]).unwrap_err().to_string();
        assert!(err.contains("missing tensor v"), "{err}");
    }

    #[test]
    fn rejects_truncated_and_corrupt_files() {
        let p = Path::new("bad.safetensors");
        for bytes in [
            vec![],
            vec![1, 2, 3],
            image("{not json", &[]),
            (1000u64).to_le_bytes().to_vec(),
            image(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 4],
            ),
            image(r#"{"w":{"dtype":"F32","shape":[2]}}"#, &[0; 8]),
        ] {
            assert!(SafeTensors::from_bytes(p, bytes).is_err());
        }
        let st = SafeTensors::from_bytes(
            p,
            image(
                r#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
        )
        .unwrap();
        let err = st.f32_tensor("w", &[2]).unwrap_err().to_string();
        assert!(err.contains("dtype F16; expected F32"), "{err}");
    }
}
