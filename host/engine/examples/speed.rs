//! Development helper: prefill and decode speed on one model.
use engram_engine::*;
use std::sync::Arc;
fn main() {
    let mut a = std::env::args().skip(1);
    let path = a.next().expect("MODEL.gguf");
    let threads: usize = a.next().map(|s| s.parse().unwrap()).unwrap_or(0);
    let n_prompt: usize = a.next().map(|s| s.parse().unwrap()).unwrap_or(128);
    let m = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(threads))).unwrap());
    let prompt: Vec<u32> = (0..n_prompt as u32).map(|i| 100 + (i * 7919) % 10000).collect();
    for _ in 0..2 {
        let mut s = Session::new(&m, SessionOptions::default());
        let t = std::time::Instant::now();
        s.prefill(&prompt).unwrap();
        let pf = t.elapsed();
        let t = std::time::Instant::now();
        let mut tok = 42;
        for _ in 0..64 {
            tok = sampler::argmax(s.decode_step(tok).unwrap());
        }
        let dc = t.elapsed();
        println!(
            "prefill {:.1} tok/s, decode {:.1} tok/s",
            n_prompt as f64 / pf.as_secs_f64(),
            64.0 / dc.as_secs_f64()
        );
    }
}
