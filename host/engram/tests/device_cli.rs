//! `--device` and the GPU line of `engram info`, through the binary: without a GPU,
//! `--device cuda` fails with a clear message (never a panic) and `--device auto` runs on the
//! CPU; with one, both run on it.

use std::path::Path;
use std::process::{Command, Output};

fn engram(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engram"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("ENGRAM_DEVICE")
        .output()
        .expect("run engram")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn info_prints_a_gpu_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = engram(dir.path(), &["info"]);
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("gpu: "))
        .unwrap_or_else(|| panic!("no gpu line in:\n{stdout}"));
    match engram_cuda::probe() {
        Ok(gpu) => assert!(line.contains(&gpu.name), "{line}"),
        Err(_) => assert!(line.starts_with("gpu: no GPU found"), "{line}"),
    }
    assert!(stdout.contains("  nvrtc: "), "{stdout}");
}

#[test]
fn device_cuda_fails_clearly_without_a_gpu_and_auto_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let args = |device: &'static str| {
        [
            "generate",
            "--device",
            device,
            "--max-tokens",
            "2",
            "--raw",
            "--prompt",
            "Hello",
        ]
    };
    let cuda = engram(dir.path(), &args("cuda"));
    let auto = engram(dir.path(), &args("auto"));
    let (cuda_err, auto_err) = (text(&cuda.stderr), text(&auto.stderr));
    assert!(
        !cuda_err.contains("panicked") && !auto_err.contains("panicked"),
        "{cuda_err}\n{auto_err}"
    );
    assert!(
        auto.status.success(),
        "--device auto must always run: {auto_err}"
    );
    match engram_cuda::probe() {
        Err(_) => {
            assert!(
                !cuda.status.success(),
                "--device cuda without a GPU must fail"
            );
            assert!(cuda_err.contains("no GPU found"), "{cuda_err}");
            assert!(
                auto_err.contains("device: cpu") && auto_err.contains("auto: no GPU found"),
                "{auto_err}"
            );
        }
        Ok(_) => {
            assert!(cuda.status.success(), "{cuda_err}");
            assert!(auto_err.contains("device: cuda"), "{auto_err}");
        }
    }
    let bad = engram(dir.path(), &args("tpu"));
    assert!(!bad.status.success() && text(&bad.stderr).contains("cpu, cuda or auto"));
}
