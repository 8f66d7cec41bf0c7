//! Recall quality with the real all-MiniLM-L6-v2 embedder: on a bank of 1,000 facts with
//! paraphrased questions, the fact asked about is in the top 5 for at least 98% of them.
//! Needs the model files (`scripts/setup.sh`).

use engram_memory::bank::bank;
use engram_memory::{Fact, MemoryConfig, MemoryStore, TextEmbedder};
use std::sync::Arc;

#[test]
fn recall_at_5_on_1000_paraphrased_facts() {
    let dir = engram_embed::default_model_dir();
    let embedder = engram_embed::Embedder::load(&dir).unwrap_or_else(|e| {
        panic!(
            "all-MiniLM-L6-v2 not loadable from {} ({e}); run scripts/setup.sh",
            dir.display()
        )
    });
    let embedder: Arc<dyn TextEmbedder> = Arc::new(embedder);
    let store_dir = tempfile::tempdir().unwrap();
    let store = MemoryStore::open(
        store_dir.path(),
        MemoryConfig::durable().with_embedder(embedder.clone()),
    )
    .unwrap();
    let facts = bank(1000);
    let ids: Vec<u64> = store
        .remember_batch(
            facts
                .iter()
                .map(|f| Fact::new(&f.subject, &f.facet, &f.value).with_text(&f.text))
                .collect(),
        )
        .unwrap()
        .into_iter()
        .map(|r| r.id())
        .collect();
    let queries: Vec<&str> = facts.iter().map(|f| f.query.as_str()).collect();
    let qvecs = embedder.embed_batch(&queries);
    let mut hits = 0;
    let mut misses = Vec::new();
    for (i, f) in facts.iter().enumerate() {
        let r = store.recall(&f.query, Some(&qvecs[i]), 5);
        if r.iter().any(|c| c.cell.id == ids[i]) {
            hits += 1;
        } else {
            misses.push(format!(
                "{:?} -> want {:?}, got {:?}",
                f.query,
                f.text,
                r.iter()
                    .map(|c| c.cell.content.text.as_str())
                    .collect::<Vec<_>>()
            ));
        }
    }
    let recall = hits as f64 / facts.len() as f64;
    eprintln!("recall@5 = {recall:.4} ({hits}/{})", facts.len());
    for m in misses.iter().take(30) {
        eprintln!("miss: {m}");
    }
    assert!(recall >= 0.98, "recall@5 {recall:.4} < 0.98");
}
