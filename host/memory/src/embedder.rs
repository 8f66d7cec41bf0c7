//! The embedding seam: the store is given an embedder instead of owning a model.

/// Turns text into unit-length vectors. Implemented for `engram_embed::Embedder`
/// (all-MiniLM-L6-v2); the store never depends on which model is behind it.
pub trait TextEmbedder: Send + Sync {
    /// One vector per text, in order, each of length [`TextEmbedder::dim`].
    fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>>;
    /// Width of the vectors.
    fn dim(&self) -> usize;
}

impl TextEmbedder for engram_embed::Embedder {
    fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        engram_embed::Embedder::embed_batch(self, texts)
    }

    fn dim(&self) -> usize {
        engram_embed::DIM
    }
}
