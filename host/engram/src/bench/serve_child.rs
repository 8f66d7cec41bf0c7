//! An `engram serve` child process for the suites that measure over HTTP (sessions, horizon):
//! started on an ephemeral loopback port from this same executable, stopped with SIGTERM so it
//! persists its sessions the way a real shutdown does.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::BenchContext;

/// A running `engram serve` child.
pub struct ServeChild {
    child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
}

impl ServeChild {
    /// Start `engram serve` on `127.0.0.1:0` with the bench's threads and models, the store in
    /// `data`, and `extra` arguments; returns once it prints the address it serves on.
    pub fn start(ctx: &BenchContext<'_>, data: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the engram executable")?;
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--threads"])
            .arg(ctx.threads.to_string())
            .arg("--models")
            .arg(&ctx.places.models)
            .arg("--data")
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start `engram serve`")?;
        let stdout = child
            .stdout
            .take()
            .context("no stdout from `engram serve`")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!("`engram serve` exited before serving (try it by hand to see why)");
            };
            let line = line.context("reading `engram serve` output")?;
            if let Some(rest) = line.split("serving on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                break addr
                    .parse()
                    .with_context(|| format!("unexpected address in {line:?}"))?;
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(ServeChild { child, addr })
    }

    /// SIGTERM, then wait: the server persists its sessions and exits.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("cannot run `kill`")?;
        if !status.success() {
            self.child.kill().ok();
        }
        self.child
            .wait()
            .context("waiting for `engram serve` to exit")?;
        Ok(())
    }
}
