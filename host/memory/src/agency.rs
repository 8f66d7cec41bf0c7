//! The agency's decision log: every supersede / merge / forget the memory agency decides
//! is appended, with its reason, to a hash-chained log inside the store's database.
//!
//! A decision line is `{seq, op, cells, reason, timestamp, anchor}` with
//! `anchor_n = BLAKE2b(anchor_{n-1} ‖ postcard(line without anchor))`; like the store's own
//! lines, a reason names κ and rules, never the remembered value (so forgetting a value
//! leaves nothing of it here). [`MemoryStore::verify_decisions`] walks the chain.

use serde::{Deserialize, Serialize};

use crate::cell::CellId;
use crate::error::{MemoryError, Result};
use crate::hash::{hash_parts, Hash32};
use crate::store::{now_micros, MemoryStore};

const TREE: &str = "agency-decisions";

/// One logged agency decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Position in the decision log, from 0.
    pub seq: u64,
    /// What was decided: `supersede`, `merge`, `forget` or `keep`.
    pub op: String,
    /// The cell versions involved (old ones first, the resulting one last).
    pub cells: Vec<CellId>,
    /// Why (rule and κ; never the value).
    pub reason: String,
    /// When, µs since the Unix epoch.
    pub timestamp: i64,
    /// The chain anchor after this decision.
    pub anchor: Hash32,
}

#[derive(Serialize)]
struct Unanchored<'a> {
    seq: u64,
    op: &'a str,
    cells: &'a [CellId],
    reason: &'a str,
    timestamp: i64,
}

fn anchor_of(prev: &Hash32, d: &Decision) -> Hash32 {
    let body = postcard::to_allocvec(&Unanchored {
        seq: d.seq,
        op: &d.op,
        cells: &d.cells,
        reason: &d.reason,
        timestamp: d.timestamp,
    })
    .expect("serialising a decision cannot fail");
    hash_parts(&[b"engram-agency-decision", prev, &body])
}

fn genesis() -> Hash32 {
    hash_parts(&[b"engram-agency-genesis"])
}

impl MemoryStore {
    fn decision_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree(TREE)?)
    }

    /// Append a decision (durable when the call returns) and return it with its anchor.
    pub fn record_decision(&self, op: &str, cells: &[CellId], reason: &str) -> Result<Decision> {
        // The store's writer lock orders decisions with the writes they explain.
        let _writer = self.writer.lock().unwrap();
        let tree = self.decision_tree()?;
        let (seq, prev) = match tree.last()? {
            Some((_, v)) => {
                let last: Decision = postcard::from_bytes(&v)
                    .map_err(|e| MemoryError::Invalid(format!("corrupt decision line: {e}")))?;
                (last.seq + 1, last.anchor)
            }
            None => (0, genesis()),
        };
        let mut decision = Decision {
            seq,
            op: op.to_string(),
            cells: cells.to_vec(),
            reason: reason.to_string(),
            timestamp: now_micros(),
            anchor: [0; 32],
        };
        decision.anchor = anchor_of(&prev, &decision);
        let bytes = postcard::to_allocvec(&decision)
            .map_err(|e| MemoryError::Invalid(format!("cannot encode a decision: {e}")))?;
        tree.insert(seq.to_be_bytes(), bytes)?;
        if !self.cfg.no_sync {
            tree.flush()?;
        }
        Ok(decision)
    }

    /// Every logged decision, oldest first.
    pub fn decisions(&self) -> Result<Vec<Decision>> {
        self.decision_tree()?
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                postcard::from_bytes(&v)
                    .map_err(|e| MemoryError::Invalid(format!("corrupt decision line: {e}")))
            })
            .collect()
    }

    /// Walk the decision chain; `Ok(None)` when every anchor follows from the previous
    /// one, else the seq of the first line that does not.
    pub fn verify_decisions(&self) -> Result<Option<u64>> {
        let mut prev = genesis();
        for (i, d) in self.decisions()?.iter().enumerate() {
            if d.seq != i as u64 || anchor_of(&prev, d) != d.anchor {
                return Ok(Some(i as u64));
            }
            prev = d.anchor;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{MemoryConfig, MemoryStore};

    #[test]
    fn decisions_chain_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = MemoryStore::open(dir.path(), MemoryConfig::durable()).unwrap();
            let a = store
                .record_decision("supersede", &[1, 2], "same κ user/ip holds one value")
                .unwrap();
            let b = store.record_decision("merge", &[3, 4], "additive").unwrap();
            assert_eq!((a.seq, b.seq), (0, 1));
            assert_ne!(a.anchor, b.anchor);
        }
        let store = MemoryStore::open(dir.path(), MemoryConfig::durable()).unwrap();
        let all = store.decisions().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].op, "merge");
        assert_eq!(store.verify_decisions().unwrap(), None);
        // An edited reason breaks the chain at that line.
        let tree = store.db.open_tree(super::TREE).unwrap();
        let mut edited = all[0].clone();
        edited.reason = "edited".into();
        tree.insert(0u64.to_be_bytes(), postcard::to_allocvec(&edited).unwrap())
            .unwrap();
        assert_eq!(store.verify_decisions().unwrap(), Some(0));
    }
}
