//! A GGUF (v2/v3) container parser over a memory-mapped file.
//!
//! Every read is bounds-checked: a truncated or corrupt file yields an [`EngineError::Gguf`]
//! naming the file, the key or tensor, and what was expected — never a panic.

use crate::error::{EngineError, Result};
use crate::quant::GgmlType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A metadata value of any GGUF type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// `uint8`
    U8(u8),
    /// `int8`
    I8(i8),
    /// `uint16`
    U16(u16),
    /// `int16`
    I16(i16),
    /// `uint32`
    U32(u32),
    /// `int32`
    I32(i32),
    /// `uint64`
    U64(u64),
    /// `int64`
    I64(i64),
    /// `float32`
    F32(f32),
    /// `float64`
    F64(f64),
    /// `bool`
    Bool(bool),
    /// `string` (UTF-8; invalid bytes are replaced)
    String(String),
    /// `array` of any one type
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is any integer type with a non-negative value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v as u64),
            MetaValue::U16(v) => Some(v as u64),
            MetaValue::U32(v) => Some(v as u64),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// The value as a float, if it is any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            MetaValue::I8(v) => Some(v as f64),
            MetaValue::I16(v) => Some(v as f64),
            MetaValue::I32(v) => Some(v as f64),
            MetaValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// The value as an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost first (GGML order: `dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    /// Size of the data in bytes.
    pub size: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata, tensor directory and the (mapped) bytes.
pub struct GgufFile {
    path: PathBuf,
    bytes: Backing,
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// All metadata key/value pairs.
    pub metadata: BTreeMap<String, MetaValue>,
    /// The tensor directory, in file order.
    pub tensors: Vec<TensorInfo>,
    index: BTreeMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl Into<String>) -> EngineError {
        EngineError::Gguf {
            path: self.path.to_path_buf(),
            what: what.into(),
        }
    }
    fn take(&mut self, n: usize, ctx: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                self.err(format!(
                    "truncated at byte {} while reading {} (needed {} bytes, file has {})",
                    self.pos,
                    ctx(),
                    n,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, ctx: &dyn Fn() -> String) -> Result<u8> {
        Ok(self.take(1, ctx)?[0])
    }
    fn u16(&mut self, ctx: &dyn Fn() -> String) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, ctx)?.try_into().unwrap()))
    }
    fn u32(&mut self, ctx: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, ctx)?.try_into().unwrap()))
    }
    fn u64(&mut self, ctx: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, ctx)?.try_into().unwrap()))
    }
    fn string(&mut self, ctx: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(ctx)?;
        let len = usize::try_from(len).map_err(|_| self.err(format!("string length {len} too large in {}", ctx())))?;
        let b = self.take(len, ctx)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<MetaValue> {
        let ctx = || format!("the value of key `{key}`");
        Ok(match ty {
            0 => MetaValue::U8(self.u8(&ctx)?),
            1 => MetaValue::I8(self.u8(&ctx)? as i8),
            2 => MetaValue::U16(self.u16(&ctx)?),
            3 => MetaValue::I16(self.u16(&ctx)? as i16),
            4 => MetaValue::U32(self.u32(&ctx)?),
            5 => MetaValue::I32(self.u32(&ctx)? as i32),
            6 => MetaValue::F32(f32::from_bits(self.u32(&ctx)?)),
            7 => match self.u8(&ctx)? {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(self.err(format!("key `{key}`: bool byte {b}, expected 0 or 1"))),
            },
            8 => MetaValue::String(self.string(&ctx)?),
            9 => {
                if depth > 4 {
                    return Err(self.err(format!("key `{key}`: arrays nested deeper than 4 levels")));
                }
                let ety = self.u32(&ctx)?;
                let n = self.u64(&ctx)?;
                // Every element takes at least one byte: a length beyond the remaining bytes is corrupt.
                let remaining = (self.buf.len() - self.pos) as u64;
                if n > remaining {
                    return Err(self.err(format!(
                        "key `{key}`: array of {n} elements cannot fit in the remaining {remaining} bytes"
                    )));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(ety, key, depth + 1)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::U64(self.u64(&ctx)?),
            11 => MetaValue::I64(self.u64(&ctx)? as i64),
            12 => MetaValue::F64(f64::from_bits(self.u64(&ctx)?)),
            t => {
                return Err(self.err(format!(
                    "key `{key}`: unknown metadata value type {t} (expected 0..=12)"
                )))
            }
        })
    }
}

impl GgufFile {
    /// Memory-maps and parses the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let io = |source| EngineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the mapping is read-only; the model file must not be modified while loaded,
        // as with any memory-mapped model loader (llama.cpp does the same).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(Backing::Mapped(map), path)
    }

    /// Parses a GGUF image held in memory (`path` only names it in errors).
    pub fn from_bytes(bytes: Vec<u8>, path: impl AsRef<Path>) -> Result<GgufFile> {
        Self::parse(Backing::Owned(bytes), path.as_ref())
    }

    fn parse(bytes: Backing, path: &Path) -> Result<GgufFile> {
        let (version, metadata, tensors) = {
            let mut r = Reader {
                buf: &bytes,
                pos: 0,
                path,
            };
            let magic = r.take(4, &|| "the magic number".into())?;
            if magic != b"GGUF" {
                return Err(r.err(format!(
                    "magic is {magic:?}, expected \"GGUF\" (is this a GGUF model file?)"
                )));
            }
            let version = r.u32(&|| "the version".into())?;
            if !(2..=3).contains(&version) {
                return Err(r.err(format!("version {version} is not supported (expected 2 or 3)")));
            }
            let n_tensors = r.u64(&|| "the tensor count".into())?;
            let n_kv = r.u64(&|| "the metadata count".into())?;
            let remaining = (r.buf.len() - r.pos) as u64;
            if n_kv > remaining || n_tensors > remaining {
                return Err(r.err(format!(
                    "header claims {n_kv} metadata entries and {n_tensors} tensors, more than the file can hold"
                )));
            }
            let mut metadata = BTreeMap::new();
            for i in 0..n_kv {
                let key = r.string(&|| format!("the key of metadata entry {i}"))?;
                let ty = r.u32(&|| format!("the type of key `{key}`"))?;
                let v = r.value(ty, &key, 0)?;
                metadata.insert(key, v);
            }
            let align = match metadata.get("general.alignment") {
                None => 32,
                Some(v) => match v.as_u64() {
                    Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                    _ => return Err(r.err(format!("key `general.alignment` is {v:?}, expected a power of two"))),
                },
            };
            let mut raw = Vec::with_capacity(n_tensors as usize);
            for i in 0..n_tensors {
                let name = r.string(&|| format!("the name of tensor {i}"))?;
                let ctx = || format!("the info of tensor `{name}`");
                let nd = r.u32(&ctx)?;
                if nd == 0 || nd > 4 {
                    return Err(r.err(format!("tensor `{name}` has {nd} dimensions, expected 1..=4")));
                }
                let mut dims = Vec::with_capacity(nd as usize);
                for _ in 0..nd {
                    dims.push(r.u64(&ctx)?);
                }
                let ty = r.u32(&ctx)?;
                let off = r.u64(&ctx)?;
                raw.push((name, dims, ty, off));
            }
            let data_start = r.pos.div_ceil(align) * align;
            let mut tensors = Vec::with_capacity(raw.len());
            for (name, dims, ty, off) in raw {
                let ggml_type = GgmlType::from_id(ty).ok_or_else(|| {
                    r.err(format!(
                        "tensor `{name}` has type id {ty}, which is not supported (supported: F32, F16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K)"
                    ))
                })?;
                let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
                let n = n
                    .filter(|&n| n <= 1 << 40)
                    .ok_or_else(|| r.err(format!("tensor `{name}`: dimensions {dims:?} overflow")))?;
                let bs = ggml_type.block_size() as u64;
                if dims[0] % bs != 0 {
                    return Err(r.err(format!(
                        "tensor `{name}`: row length {} is not a multiple of the {:?} block size {bs}",
                        dims[0], ggml_type
                    )));
                }
                let size = (n / bs) * ggml_type.block_bytes() as u64;
                if off % align as u64 != 0 {
                    return Err(r.err(format!("tensor `{name}`: offset {off} is not aligned to {align}")));
                }
                let start = (data_start as u64).checked_add(off);
                let end = start.and_then(|s| s.checked_add(size));
                match end {
                    Some(e) if e <= bytes.len() as u64 => {}
                    _ => {
                        return Err(r.err(format!(
                            "tensor `{name}`: data at offset {off} of {size} bytes runs past the end of the file ({} bytes); the file is truncated",
                            bytes.len()
                        )))
                    }
                }
                tensors.push(TensorInfo {
                    name,
                    dims,
                    ggml_type,
                    offset: start.unwrap() as usize,
                    size: size as usize,
                });
            }
            (version, metadata, tensors)
        };
        let mut index = BTreeMap::new();
        for (i, t) in tensors.iter().enumerate() {
            if index.insert(t.name.clone(), i).is_some() {
                return Err(EngineError::Gguf {
                    path: path.to_path_buf(),
                    what: format!("tensor `{}` appears twice", t.name),
                });
            }
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            bytes,
            version,
            metadata,
            tensors,
            index,
        })
    }

    /// The path this file was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Looks up a tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of a tensor (bounds were checked at parse time).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        &self.bytes[t.offset..t.offset + t.size]
    }

    /// A metadata value, or an error naming the missing key.
    pub fn get(&self, key: &str) -> Result<&MetaValue> {
        self.metadata.get(key).ok_or_else(|| self.meta_err(key, "missing"))
    }

    /// A required unsigned integer metadata value.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)?
            .as_u64()
            .ok_or_else(|| self.meta_err(key, "expected an unsigned integer"))
    }

    /// A required float metadata value.
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.get(key)?
            .as_f64()
            .ok_or_else(|| self.meta_err(key, "expected a number"))
    }

    /// A required string metadata value.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)?
            .as_str()
            .ok_or_else(|| self.meta_err(key, "expected a string"))
    }

    /// An error about metadata key `key`.
    pub fn meta_err(&self, key: &str, what: &str) -> EngineError {
        EngineError::Metadata {
            path: self.path.clone(),
            key: key.to_string(),
            what: what.to_string(),
        }
    }

    /// An error about tensor `tensor`.
    pub fn tensor_err(&self, tensor: &str, what: impl Into<String>) -> EngineError {
        EngineError::Tensor {
            path: self.path.clone(),
            tensor: tensor.to_string(),
            what: what.into(),
        }
    }
}
