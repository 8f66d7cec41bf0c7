//! `engram memory …` shapes that scripts rely on: printed ids and values, exit codes,
//! `verify` naming the first bad line, `.atom` refusal.

use std::path::Path;
use std::process::{Command, Output};

fn engram(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engram"))
        .arg("--data")
        .arg(data)
        .arg("memory")
        .arg("--no-embed")
        .args(args)
        .env_remove("ENGRAM_SEAL_KEY")
        .output()
        .expect("run engram")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = engram(data, args);
    assert!(
        out.status.success(),
        "engram memory {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn memory_commands_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let remember = |value: &str, from: &str| {
        ok(
            &data,
            &[
                "remember",
                "--subject",
                "build server",
                "--facet",
                "ip",
                "--value",
                value,
                "--valid-from",
                from,
            ],
        )
    };
    let id = remember("10.0.0.5", "2026-01-01T00:00:00Z");
    assert!(
        id.trim().parse::<u64>().is_ok(),
        "remember prints the cell id, got {id:?}"
    );
    remember("10.0.0.7", "2026-02-01T00:00:00Z");
    let get = |as_of: Option<&str>| {
        let mut args = vec!["get", "--subject", "build server", "--facet", "ip"];
        if let Some(t) = as_of {
            args.extend(["--as-of", t]);
        }
        ok(&data, &args).trim().to_string()
    };
    assert_eq!(get(None), "10.0.0.7");
    assert_eq!(get(Some("2026-01-15T00:00:00Z")), "10.0.0.5");
    assert_eq!(
        engram(&data, &["get", "--subject", "nobody", "--facet", "ip"])
            .status
            .code(),
        Some(1)
    );
    let history = ok(
        &data,
        &["history", "--subject", "build server", "--facet", "ip"],
    );
    assert_eq!(history.lines().count(), 2);
    let search = ok(&data, &["search", "build server ip", "--json"]);
    assert!(search.contains("\"value\":\"10.0.0.7\""), "{search}");
    let verify = ok(&data, &["verify"]);
    assert!(verify.starts_with("ok: 2 lines, head "), "{verify}");
    ok(&data, &["seal"]);
    let atom = dir.path().join("m.atom");
    let exported = ok(&data, &["export", atom.to_str().unwrap()]);
    let signature = ok(&data, &["signature"]);
    let sig_hex = signature.split(' ').next().unwrap().to_string();
    assert_eq!(sig_hex.len(), 64, "{signature}");
    assert!(signature.contains("(1 current cells)"), "{signature}");
    assert!(exported.contains(&sig_hex), "{exported}");
    let forgot = ok(
        &data,
        &["forget", "--subject", "build server", "--facet", "ip"],
    );
    let hash = forgot
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(ok(&data, &["prove-forgotten", &hash]).contains("its key is destroyed: true"));
    assert!(ok(&data, &["verify"]).starts_with("ok: 4 lines"));
    // Import into a fresh store; a truncated copy is refused with the reason.
    let fresh = dir.path().join("fresh");
    let imported = ok(&fresh, &["import", atom.to_str().unwrap()]);
    // The imported store knows what the exporting one knew at export time.
    assert!(imported.contains(&sig_hex), "{imported}");
    assert_eq!(
        ok(
            &fresh,
            &["get", "--subject", "build server", "--facet", "ip"]
        )
        .trim(),
        "10.0.0.7"
    );
    let bytes = std::fs::read(&atom).unwrap();
    let cut = dir.path().join("cut.atom");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let out = engram(
        &dir.path().join("other"),
        &["import", cut.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}
