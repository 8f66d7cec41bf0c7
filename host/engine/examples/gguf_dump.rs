//! Prints a GGUF file's metadata (arrays abbreviated) and tensor directory.
fn main() {
    let path = std::env::args().nth(1).expect("usage: gguf_dump FILE.gguf");
    let f = engram_engine::gguf::GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    for (k, v) in &f.metadata {
        match v {
            engram_engine::gguf::MetaValue::Array(a) => println!("{k} = [{} items] first {:?}", a.len(), a.first()),
            engram_engine::gguf::MetaValue::String(s) if s.len() > 200 => println!("{k} = {:?}...", &s[..200]),
            _ => println!("{k} = {v:?}"),
        }
    }
    let mut counts = std::collections::BTreeMap::new();
    for t in &f.tensors {
        if !t.name.starts_with("blk.") || t.name.starts_with("blk.0.") {
            println!("{} {:?} {:?}", t.name, t.dims, t.ggml_type);
        }
        *counts.entry(format!("{:?}", t.ggml_type)).or_insert(0) += 1;
    }
    println!("{counts:?}");
}
