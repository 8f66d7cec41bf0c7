//! `engram info`: what this installation has, and where.

use crate::locate::Places;
use crate::model_files::{self, FileState};

/// Print the models (with their verified sha256), the built plugins and the store.
pub fn run(places: &Places) -> anyhow::Result<()> {
    println!("engram {}", env!("CARGO_PKG_VERSION"));
    println!();
    println!("models: {}", places.models.display());
    let mut missing_default = false;
    for file in model_files::KNOWN {
        let path = places.models.join(file.relative_path);
        match model_files::check(&places.models, file) {
            FileState::Verified { bytes } => println!(
                "  ok       {}\n           {} ({} bytes)\n           sha256 {} (verified)",
                file.role,
                path.display(),
                bytes,
                file.sha256
            ),
            FileState::Missing => {
                missing_default |= file.default;
                let hint = if file.default {
                    "run scripts/setup.sh"
                } else {
                    "run scripts/setup.sh --with-qwen"
                };
                println!(
                    "  missing  {}\n           {} ({hint})",
                    file.role,
                    path.display()
                );
            }
            FileState::Mismatch { actual } => {
                missing_default |= file.default;
                println!(
                    "  CORRUPT  {}\n           {}\n           sha256 {actual}, expected {} (run scripts/setup.sh to fetch it again)",
                    file.role,
                    path.display(),
                    file.sha256
                );
            }
            FileState::Unreadable { error } => {
                missing_default |= file.default;
                println!(
                    "  error    {}\n           {}: {error}",
                    file.role,
                    path.display()
                );
            }
        }
    }
    println!();
    println!("plugins: {}", places.plugins.display());
    let mut components: Vec<_> = std::fs::read_dir(&places.plugins)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
                .collect()
        })
        .unwrap_or_default();
    components.sort();
    if components.is_empty() {
        println!("  none built (scripts/setup.sh builds them)");
    }
    for component in components {
        let bytes = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
        println!("  {} ({bytes} bytes)", component.display());
    }
    println!();
    println!("gpu: {}", engram_cuda::gpu_line());
    println!("  nvrtc: {}", engram_cuda::nvrtc_line(Some(&places.base)));
    println!();
    println!("store: {}", places.data.display());
    if places.data.join("memory").is_dir() {
        println!("  memory store present");
    } else {
        println!("  no memory store yet (created on first use)");
    }
    if missing_default {
        anyhow::bail!("a default model file is missing or corrupt; run scripts/setup.sh");
    }
    Ok(())
}
