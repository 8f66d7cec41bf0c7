//! Acknowledged writes survive SIGKILL: a child process writes 10,000 facts in durable
//! batches, printing an acknowledgement after each; it is killed at a random point,
//! the store is reopened, every acknowledged fact must be there and `verify` must pass;
//! the child is restarted to finish the 10,000 and the check repeats. 20 repetitions.

use engram_memory::{MemoryConfig, MemoryStore};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WRITES: u64 = 10_000;
const BATCH: u64 = 200;
const REPS: usize = 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Run the child over `from..WRITES`; when `kill_after` is set, SIGKILL it once it has
/// acknowledged that many batches plus a random extra delay. Returns the highest ack.
fn run_child(dir: &std::path::Path, from: u64, kill_after: Option<(u64, u64)>) -> Option<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_engram-memory-stress"))
        .args([
            dir.to_str().unwrap(),
            &from.to_string(),
            &WRITES.to_string(),
            &BATCH.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the stress child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Option<u64> = None;
    let mut batches = 0;
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("ack ") {
            acked = Some(n.parse().unwrap());
            batches += 1;
            if let Some((after, extra_us)) = kill_after {
                if batches >= after {
                    // Let it run on into the middle of a later batch, then kill it.
                    let until = Instant::now() + Duration::from_micros(extra_us);
                    while Instant::now() < until {}
                    child.kill().unwrap(); // SIGKILL on Unix
                    break;
                }
            }
        }
    }
    let _ = child.wait();
    acked
}

fn check(dir: &std::path::Path, acked: Option<u64>) -> u64 {
    let store = MemoryStore::open(dir, MemoryConfig::durable()).expect("reopen after kill");
    let report = store.verify().unwrap();
    assert!(report.ok(), "verify after kill: {:?}", report.problem);
    if let Some(last) = acked {
        for i in 0..=last {
            let c = store.get(&format!("s{i}"), "f", None);
            assert_eq!(
                c.map(|c| c.content.value.raw),
                Some(format!("v{i}")),
                "acknowledged write {i} lost"
            );
        }
    }
    store.stats().current_cells as u64
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("durability seed {seed}");
    let mut rng = Rng(seed);
    for rep in 0..REPS {
        let dir = tempfile::tempdir().unwrap();
        let kill_after = 1 + rng.next() % (WRITES / BATCH - 1);
        let extra_us = rng.next() % 3_000;
        let acked = run_child(dir.path(), 0, Some((kill_after, extra_us)));
        assert!(acked.is_some(), "rep {rep}: child acknowledged nothing");
        let present = check(dir.path(), acked);
        assert!(present > acked.unwrap(), "rep {rep}");
        // Restart and finish the 10,000 (facts already present are idempotent no-ops).
        let done = run_child(dir.path(), present, None);
        assert_eq!(
            done,
            Some(WRITES - 1),
            "rep {rep}: restarted child did not finish"
        );
        assert_eq!(check(dir.path(), done), WRITES, "rep {rep}");
    }
}
