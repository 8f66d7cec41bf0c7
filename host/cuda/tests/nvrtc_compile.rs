//! Every file of `kernels/` compiles to PTX with NVRTC, for several architectures. Runs in CI
//! without a GPU: NVRTC comes from the PyPI wheel `nvidia-cuda-nvrtc-cu12` that
//! `scripts/setup-ci.sh` installs into `.venv`. When NVRTC cannot be found the test fails —
//! it never passes silently — unless `ENGRAM_SKIP_NVRTC_TEST=1` says to skip it.

use engram_cuda::kernels::{self, PRELUDE_FILE, SOURCES};
use engram_cuda::loader;
use std::io::Write;
use std::path::Path;

/// Architectures every kernel must compile for: Turing, Ampere, Ada, Hopper.
const ARCHS: &[&str] = &["compute_75", "compute_80", "compute_89", "compute_90"];

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("host/cuda is two levels deep")
}

fn nvrtc_or_skip() -> bool {
    if std::env::var("ENGRAM_SKIP_NVRTC_TEST").is_ok_and(|v| v == "1") {
        // Straight to stderr, past the test harness's capture, so the skip is visible.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: ENGRAM_SKIP_NVRTC_TEST=1 — the kernels of kernels/ were NOT compiled"
        );
        return false;
    }
    if let Err(e) = loader::ensure_nvrtc(Some(workspace_root())) {
        panic!("{e}\n(run scripts/setup-ci.sh, or set ENGRAM_SKIP_NVRTC_TEST=1 to skip this test explicitly)");
    }
    true
}

#[test]
fn every_kernel_file_is_registered() {
    // A new .cu file must be added to kernels::SOURCES, or it would escape this test.
    let dir = workspace_root().join("kernels");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("kernels/ exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != PRELUDE_FILE)
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = SOURCES.iter().map(|s| s.file.to_string()).collect();
    registered.sort();
    assert_eq!(
        on_disk, registered,
        "kernels/ and kernels::SOURCES disagree"
    );
    for s in SOURCES {
        let text = std::fs::read_to_string(dir.join(s.file)).expect("readable");
        assert_eq!(text, s.text, "{} embedded text is stale (rebuild)", s.file);
    }
}

#[test]
fn every_kernel_compiles_to_ptx() {
    if !nvrtc_or_skip() {
        return;
    }
    let (major, minor) = loader::nvrtc_version().expect("NVRTC version");
    eprintln!("NVRTC {major}.{minor}");
    let mut failures = Vec::new();
    for src in SOURCES {
        for arch in ARCHS {
            match kernels::compile(src, arch) {
                Ok(ptx) => {
                    assert!(
                        ptx.contains(".entry"),
                        "{} for {arch}: PTX without any kernel entry",
                        src.file
                    );
                    assert!(
                        ptx.contains(&format!(".target sm_{}", &arch["compute_".len()..])),
                        "{} PTX target",
                        src.file
                    );
                    eprintln!("ok {} {arch}: {} bytes of PTX", src.file, ptx.len());
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kernel compile failures:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn a_syntax_error_fails_to_compile() {
    // The compile test can fail: a broken unit is reported with NVRTC's log.
    if !nvrtc_or_skip() {
        return;
    }
    let bad = kernels::KernelSource {
        file: "broken.cu",
        text: "extern \"C\" __global__ void k(float* x) { x[0] = undeclared_name; }",
    };
    let err = kernels::compile(&bad, "compute_80").expect_err("must not compile");
    let msg = err.to_string();
    assert!(
        msg.contains("broken.cu") && msg.contains("undeclared_name"),
        "{msg}"
    );
}

#[test]
fn ptx_cache_is_keyed_by_content_and_arch() {
    if !nvrtc_or_skip() {
        return;
    }
    let nv = loader::nvrtc_version().expect("version");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = kernels::source("norm.cu").expect("norm.cu");
    let a = kernels::ptx_cached(src, "compute_80", nv, Some(dir.path())).expect("compile");
    let files = || std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files(), 1);
    let b = kernels::ptx_cached(src, "compute_80", nv, Some(dir.path())).expect("cached");
    assert_eq!(a, b);
    assert_eq!(files(), 1, "a second call reads the cache");
    kernels::ptx_cached(src, "compute_90", nv, Some(dir.path())).expect("compile 90");
    assert_eq!(files(), 2, "another architecture is another entry");
    assert_ne!(
        kernels::cache_key(src, "compute_80", nv),
        kernels::cache_key(src, "compute_90", nv)
    );
}

#[test]
fn prebuilt_ptx_is_keyed_by_source_and_arch() {
    if !nvrtc_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let files = kernels::write_prebuilt(dir.path(), "compute_90").expect("prebuild");
    assert_eq!(files.len(), SOURCES.len(), "one file per kernel source");
    for src in SOURCES {
        let ptx = kernels::prebuilt(src, "compute_90", dir.path()).expect("prebuilt PTX found");
        assert!(
            ptx.contains(".target sm_90"),
            "{}: PTX for the wrong target",
            src.file
        );
        assert!(
            kernels::prebuilt(src, "compute_80", dir.path()).is_none(),
            "{}: another architecture must not match",
            src.file
        );
    }
    // A changed source does not load the old file.
    let norm = kernels::source("norm.cu").expect("norm.cu");
    let edited = kernels::KernelSource {
        file: norm.file,
        text: "// edited\n",
    };
    assert!(kernels::prebuilt(&edited, "compute_90", dir.path()).is_none());
}
