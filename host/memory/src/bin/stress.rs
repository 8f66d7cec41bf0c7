//! Writes facts `(s<i>, f, v<i>)` for i in `from..to` in durable batches and prints
//! `ack <i>` after each batch returns (i = last index of the batch). The durability test
//! kills this process at random points and checks every acknowledged write survived.
//!
//! Usage: `engram-memory-stress DIR FROM TO BATCH`

use engram_memory::{Fact, MemoryConfig, MemoryStore};
use std::io::Write;

fn main() {
    if let Err(e) = run() {
        eprintln!("engram-memory-stress: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: engram-memory-stress DIR FROM TO BATCH".into());
    }
    let from: u64 = args[2].parse()?;
    let to: u64 = args[3].parse()?;
    let batch: u64 = args[4].parse::<u64>()?.max(1);
    let store = MemoryStore::open(&args[1], MemoryConfig::durable())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let facts = (i..end)
            .map(|j| Fact::new(format!("s{j}"), "f", format!("v{j}")))
            .collect();
        store.remember_batch(facts)?;
        writeln!(out, "ack {}", end - 1)?;
        out.flush()?;
        i = end;
    }
    writeln!(out, "done")?;
    out.flush()?;
    Ok(())
}
