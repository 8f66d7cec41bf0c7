//! Development helper: runs the reference comparison and prints every figure.
fn main() {
    let mut a = std::env::args().skip(1);
    let (json, model) = (a.next().expect("REF.json"), a.next().expect("MODEL.gguf"));
    let t = std::time::Instant::now();
    let m = std::sync::Arc::new(engram_engine::Model::load(&model).unwrap_or_else(|e| panic!("{e}")));
    eprintln!("loaded in {:?}", t.elapsed());
    let r = engram_engine::reference::check_reference(&m, &std::fs::read_to_string(json).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    for (line, ok) in r.checks() {
        println!("{} {line}", if ok { "PASS" } else { "FAIL" });
    }
    eprintln!("total {:?}", t.elapsed());
}
