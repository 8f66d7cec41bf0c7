//! The model files Engram knows, where `scripts/fetch_models.py` puts them, and their
//! expected sha256 (the same values as DESIGN.md and the fetch script).

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// One model file Engram can use.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// What the file is for.
    pub role: &'static str,
    /// Path relative to the models folder.
    pub relative_path: &'static str,
    /// Expected sha256, lowercase hex.
    pub sha256: &'static str,
    /// Whether `scripts/setup.sh` fetches it by default (otherwise only with `--with-qwen`).
    pub default: bool,
}

/// The chat model served when none is named (relative to the models folder).
pub const DEFAULT_CHAT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Every model file the setup script can fetch.
pub const KNOWN: &[ModelFile] = &[
    ModelFile {
        role: "chat model (default): SmolLM2-135M-Instruct Q4_1",
        relative_path: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        default: true,
    },
    ModelFile {
        role: "embedding model: all-MiniLM-L6-v2 weights",
        relative_path: "all-MiniLM-L6-v2/model.safetensors",
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        default: true,
    },
    ModelFile {
        role: "embedding model: all-MiniLM-L6-v2 tokenizer",
        relative_path: "all-MiniLM-L6-v2/tokenizer.json",
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        default: true,
    },
    ModelFile {
        role: "embedding model: all-MiniLM-L6-v2 config",
        relative_path: "all-MiniLM-L6-v2/config.json",
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        default: true,
    },
    ModelFile {
        role: "chat model (optional): Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        relative_path: "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        default: false,
    },
];

/// What checking a model file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// The file exists and its sha256 matches.
    Verified { bytes: u64 },
    /// The file does not exist.
    Missing,
    /// The file exists but its sha256 differs (corrupt or replaced).
    Mismatch { actual: String },
    /// The file could not be read.
    Unreadable { error: String },
}

/// Check one model file under `models_dir` against its expected sha256.
pub fn check(models_dir: &Path, file: &ModelFile) -> FileState {
    let path = models_dir.join(file.relative_path);
    if !path.exists() {
        return FileState::Missing;
    }
    match sha256_file(&path) {
        Ok((digest, bytes)) if digest == file.sha256 => FileState::Verified { bytes },
        Ok((actual, _)) => FileState::Mismatch { actual },
        Err(err) => FileState::Unreadable {
            error: err.to_string(),
        },
    }
}

fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((hex, total))
}
