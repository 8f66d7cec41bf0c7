//! Writes the prebuilt PTX of every kernel file for the given architectures into a folder, for
//! a machine whose NVRTC is missing or unusable (`ENGRAM_PTX_DIR=<folder>` there makes the
//! backend load these files instead of compiling).
//!
//! `cargo run -p engram-cuda --example prebuild_ptx -- <folder> compute_90 [compute_80 …]`

use std::path::{Path, PathBuf};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: prebuild_ptx <folder> <compute_XY>…");
        std::process::exit(2);
    };
    let archs: Vec<String> = args.collect();
    if archs.is_empty() {
        eprintln!("name at least one architecture, e.g. compute_90 (H100/H200)");
        std::process::exit(2);
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Err(e) = engram_cuda::loader::ensure_nvrtc(Some(&checkout)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    for arch in &archs {
        match engram_cuda::kernels::write_prebuilt(&dir, arch) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }
}
