//! The memory agency's rules: DECIDE (supersede or merge) when a captured statement overlaps
//! an existing memory, FORGET matching ("forget X" → token overlap, then embedding), and the
//! `memory` import the agency plugin's maintenance round works through.
//!
//! The default model (135M parameters) is too small to be trusted with these judgements, so
//! they are rules, each one named in the reason logged with the decision
//! ([`engram_memory::agency::Decision`]):
//!
//! - same κ (subject, facet), same value → nothing to decide (the store keeps it unchanged);
//! - same κ, new value, and the statement is additive ("also", "too", "as well", …) → MERGE:
//!   both hold, the cell becomes the synthesis ("chess and hiking");
//! - same κ, new value otherwise → SUPERSEDE: one κ holds one value ("cannot both be true at
//!   once"), the old value stays as history;
//! - a facet that only adds a generic qualifier to an existing facet of the same subject
//!   with a value of the same shape ("ip address" next to "ip") is the same κ: the rules
//!   above apply to the existing cell.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use engram_memory::agency::Decision;
use engram_memory::{Cell, CellContent, CellId, MemoryStore, Selector, Shape, TypedValue};
use engram_plugins::{Fact as PluginFact, MemoryBackend, MemoryItem};

use crate::capabilities::CAPABILITIES_SUBJECT;

/// Words that mark a statement as adding to what is known rather than changing it.
const ADDITIVE: &[&str] = &[
    " also ",
    " too",
    " either",
    " as well",
    " another ",
    " in addition",
    " besides ",
    " additionally",
];

/// Facets that hold a collection: "I'm allergic to cats" and then "I'm allergic to peanuts"
/// are both true, so a statement of another value adds to the cell unless it says the old
/// value stopped holding ([`REPLACING`]).
const COLLECTIONS: &[&str] = &[
    "likes",
    "dislikes",
    "allergies",
    "languages",
    "plays",
    "avoids",
];

/// Words that say a statement replaces what held before ("I now speak …", "Actually, …",
/// "… instead", "I no longer …").
const REPLACING: &[&str] = &[
    " now ",
    " actually ",
    " actually,",
    " instead",
    " no longer ",
    " anymore",
    " any more",
];

/// Facet words that qualify without changing what the facet is.
const GENERIC_QUALIFIERS: &[&str] = &[
    "address", "number", "no", "num", "id", "value", "current", "new", "main", "primary", "actual",
];

/// Words a "forget" turn uses that say nothing about what to forget.
const FORGET_NOISE: &[&str] = &[
    "forget",
    "please",
    "erase",
    "remove",
    "delete",
    "stop",
    "remembering",
    "remember",
    "about",
    "that",
    "the",
    "a",
    "an",
    "my",
    "i",
    "me",
    "what",
    "you",
    "know",
    "is",
    "are",
    "was",
    "of",
    "and",
    "to",
    "it",
    "its",
    "everything",
    "all",
    "s",
    "where",
    "when",
    "which",
    "who",
    "how",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "this",
    "these",
    "those",
    "anything",
];

/// Embedding similarity a forget target must reach when no memory matches by tokens.
pub const FORGET_MIN_SIMILARITY: f32 = 0.55;
/// Share of a forget request's content tokens a memory must contain to match.
pub const FORGET_MIN_OVERLAP: f32 = 0.6;

/// What the agency decided for one captured fact.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// No overlapping memory: remember it as new.
    New,
    /// The same κ already holds the same value.
    Unchanged,
    /// Replace the old value; `reason` explains why.
    Supersede {
        /// The current cell being replaced.
        old: Box<Cell>,
        /// The rule that decided.
        reason: String,
    },
    /// Both hold: the cell becomes the synthesis.
    Merge {
        /// The current cell merged with.
        old: Box<Cell>,
        /// The synthesised value.
        value: String,
        /// The synthesised statement.
        statement: String,
        /// The rule that decided.
        reason: String,
    },
}

/// A captured fact after the agency looked at it: the κ to write under, and the plan.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The fact to write (facet possibly canonicalised to an existing one).
    pub fact: PluginFact,
    /// What to do.
    pub plan: Plan,
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == '@' || c == ':'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .map(|w| w.strip_suffix("'s").unwrap_or(w).to_string())
        .collect()
}

fn facet_words(facet: &str) -> BTreeSet<String> {
    facet
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the statement adds to what is known ("My hobbies are also hiking").
pub fn is_additive(statement: &str) -> bool {
    let padded = padded(statement);
    ADDITIVE.iter().any(|marker| padded.contains(marker))
}

/// A statement lower case without its end mark, with a space on each side, for matching
/// the word markers of [`ADDITIVE`] and [`REPLACING`].
fn padded(statement: &str) -> String {
    format!(
        " {} ",
        statement.to_lowercase().trim_end_matches(['.', '!'])
    )
}

/// Whether a statement of a new value for `facet` adds to a collection ([`COLLECTIONS`])
/// rather than replacing its value: it says nothing of the old value ending ([`REPLACING`]).
pub fn collects(facet: &str, statement: &str) -> bool {
    let padded = padded(statement);
    is_collection(facet) && !REPLACING.iter().any(|marker| padded.contains(marker))
}

/// Whether a facet holds a collection of values ([`COLLECTIONS`]: "allergies", "likes").
pub fn is_collection(facet: &str) -> bool {
    COLLECTIONS.contains(&facet.to_lowercase().as_str())
}

/// Whether two facets of one subject name the same property ("ip" / "ip address").
pub fn same_property(a: &str, b: &str) -> bool {
    let (a, b) = (facet_words(a), facet_words(b));
    if a == b || a.is_empty() || b.is_empty() || a.is_disjoint(&b) {
        return a == b && !a.is_empty();
    }
    a.symmetric_difference(&b)
        .all(|w| GENERIC_QUALIFIERS.contains(&w.as_str()))
}

/// "chess" + "hiking" → "chess and hiking"; "chess and hiking" + "golf" → "chess, hiking
/// and golf".
pub fn synthesis(old: &str, new: &str) -> String {
    let list = |text: &str| -> Vec<String> {
        text.split(", ")
            .flat_map(|part| part.split(" and "))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut items = list(old);
    for item in list(new) {
        if !items.iter().any(|i| i.eq_ignore_ascii_case(&item)) {
            items.push(item);
        }
    }
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn bare(value: &str) -> &str {
    crate::memory::untyped(value)
}

/// Look at a captured fact against the store and decide what to do with it.
pub fn decide(store: &MemoryStore, fact: PluginFact) -> Decided {
    let mut fact = fact;
    let value = TypedValue::parse(bare(&fact.value));
    let mut current = store.get(&fact.subject, &fact.facet, None);
    let mut alias_note = String::new();
    if current.is_none() {
        // A differently worded facet of the same subject may name the same property.
        let alias = store
            .list()
            .into_iter()
            .filter(|c| c.content.subject.eq_ignore_ascii_case(&fact.subject))
            .find(|c| {
                same_property(&c.content.facet, &fact.facet)
                    && (c.content.value.shape == value.shape || value.shape == Shape::Text)
            });
        if let Some(cell) = alias {
            alias_note = format!(
                " (facet `{}` names the same property as `{}`: it differs only by a generic qualifier)",
                fact.facet, cell.content.facet
            );
            fact.facet = cell.content.facet.clone();
            current = Some(cell);
        }
    }
    let Some(old) = current else {
        return Decided {
            fact,
            plan: Plan::New,
        };
    };
    if old.content.value.normalized == value.normalized {
        return Decided {
            fact,
            plan: Plan::Unchanged,
        };
    }
    let kappa = format!("({}, {})", old.content.subject, old.content.facet);
    let additive = is_additive(&fact.statement);
    let collected = !additive && collects(&old.content.facet, &fact.statement);
    if (additive || collected) && old.content.value.shape == Shape::Text {
        let merged = synthesis(&old.content.value.raw, &value.raw);
        let statement = restated(&old.content, &merged);
        let why = if additive {
            "the statement is additive (it says also/too/as well)"
        } else {
            "the facet holds a collection and the statement does not say the old value ended (now/actually/instead/no longer)"
        };
        let reason = format!(
            "MERGE {kappa}: {why}, so the old and the new value both hold; the cell becomes their synthesis{alias_note}"
        );
        return Decided {
            fact: PluginFact {
                value: merged.clone(),
                statement: statement.clone(),
                ..fact
            },
            plan: Plan::Merge {
                old: Box::new(old),
                value: merged,
                statement,
                reason,
            },
        };
    }
    let reason = format!(
        "SUPERSEDE {kappa}: one subject and facet hold one value, and the new statement gives a different one (they cannot both be true at once); the old value is kept as history{alias_note}"
    );
    // Restate the old statement with the new value, so recall and judges keep reading the
    // same plain fact ("Actually my box's IP address is B" → "My box's IP is B").
    if !old.content.value.raw.is_empty() && old.content.text.contains(&old.content.value.raw) {
        fact.statement = old
            .content
            .text
            .replacen(&old.content.value.raw, &value.raw, 1);
    }
    Decided {
        fact,
        plan: Plan::Supersede {
            old: Box::new(old),
            reason,
        },
    }
}

/// A memory chosen for erasure and why it matched.
#[derive(Debug, Clone)]
pub struct ForgetTarget {
    /// The current cell of the κ to erase.
    pub cell: Cell,
    /// How it matched (token overlap or embedding similarity).
    pub reason: String,
}

/// The content words of a forget request ("Forget my server's IP" → server, ip).
pub fn forget_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = words(text)
        .into_iter()
        .filter(|w| !FORGET_NOISE.contains(&w.as_str()))
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

fn cell_words(cell: &Cell) -> BTreeSet<String> {
    let c = &cell.content;
    words(&format!(
        "{} {} {} {}",
        c.subject.replace(['.', '_'], " "),
        c.facet.replace('_', " "),
        c.value.raw,
        c.text
    ))
    .into_iter()
    .collect()
}

/// The memories a "forget …" request names: the current cells containing at least
/// [`FORGET_MIN_OVERLAP`] of the request's content words (the best-overlapping ones), else
/// the nearest cell by embedding when it is at least [`FORGET_MIN_SIMILARITY`] similar.
/// Engram's own capability facts are never targets.
pub fn forget_targets(store: &MemoryStore, text: &str) -> Vec<ForgetTarget> {
    let cells: Vec<Cell> = store
        .list()
        .into_iter()
        .filter(|c| !is_capability(c))
        .collect();
    if forgets_everything(text) {
        return cells
            .into_iter()
            .filter(|c| {
                let subject = c.content.subject.to_lowercase();
                c.valid_to.is_none() && (subject == "user" || subject.starts_with("user."))
            })
            .map(|cell| ForgetTarget {
                reason: format!(
                    "FORGET ({}, {}): the request asks to forget everything about the user",
                    cell.content.subject, cell.content.facet
                ),
                cell,
            })
            .collect();
    }
    let terms = forget_terms(text);
    if terms.is_empty() {
        return Vec::new();
    }
    let mut best = 0usize;
    let mut hits: Vec<(Cell, usize)> = Vec::new();
    for cell in cells {
        let have = cell_words(&cell);
        let n = terms.iter().filter(|t| have.contains(*t)).count();
        if (n as f32) < FORGET_MIN_OVERLAP * terms.len() as f32 || n < best || n == 0 {
            continue;
        }
        if n > best {
            best = n;
            hits.clear();
        }
        hits.push((cell, n));
    }
    if !hits.is_empty() {
        return hits
            .into_iter()
            .map(|(cell, n)| ForgetTarget {
                reason: format!(
                    "FORGET ({}, {}): token overlap {n}/{} with the request's content words",
                    cell.content.subject,
                    cell.content.facet,
                    terms.len()
                ),
                cell,
            })
            .collect();
    }
    let query = terms.join(" ");
    store
        .recall(&query, None, 4)
        .into_iter()
        .filter(|c| !is_capability(&c.cell))
        .find(|c| c.features.similarity >= FORGET_MIN_SIMILARITY)
        .map(|c| ForgetTarget {
            reason: format!(
                "FORGET ({}, {}): no memory shares enough words; embedding similarity {:.2} ≥ {FORGET_MIN_SIMILARITY}",
                c.cell.content.subject, c.cell.content.facet, c.features.similarity
            ),
            cell: c.cell,
        })
        .into_iter()
        .collect()
}

/// Words of a "forget everything" request that name nothing in particular ("Forget
/// everything you know about me", "Delete all my data").
const EVERYTHING_NOISE: &[&str] = &[
    "you",
    "know",
    "me",
    "i",
    "we",
    "stored",
    "store",
    "said",
    "told",
    "data",
    "facts",
    "fact",
    "memory",
    "memories",
    "info",
    "information",
    "now",
    "so",
    "far",
    "ever",
    "of",
    "us",
];

/// Whether a forget request asks to forget everything about the user: it says "everything"
/// or "all" and names nothing else ("Forget everything about my wife" names the wife).
pub fn forgets_everything(text: &str) -> bool {
    let said = words(text);
    let everything = said.iter().any(|w| w == "everything" || w == "all");
    everything
        && forget_terms(text)
            .iter()
            .all(|t| EVERYTHING_NOISE.contains(&t.as_str()))
}

/// What a collection keeps when a forget request names some of its items only: "Forget that
/// I'm allergic to dogs" on `cats and dogs` keeps `cats` (the items it names: `dogs`).
/// `None` when the cell is not a collection ([`COLLECTIONS`]), or the request names none or
/// all of its items (then the whole κ is forgotten).
pub fn kept_items(cell: &Cell, text: &str) -> Option<(String, String)> {
    if !is_collection(&cell.content.facet) {
        return None;
    }
    let asked: BTreeSet<String> = words(text).into_iter().collect();
    let items: Vec<&str> = bare(&cell.content.value.raw)
        .split(", ")
        .flat_map(|item| item.split(" and "))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect();
    let (named, kept): (Vec<&str>, Vec<&str>) = items
        .iter()
        .partition(|item| words(item).iter().all(|w| asked.contains(w)));
    if named.is_empty() || kept.is_empty() {
        return None;
    }
    let list = |items: &[&str]| synthesis("", &items.join(" and "));
    Some((list(&kept), list(&named)))
}

/// A cell's statement with another value ("I'm allergic to cats and dogs" with `cats` →
/// "I'm allergic to cats"), or "<subject> <facet> is <value>" when the statement does not
/// hold the old value as written.
pub fn restated(content: &CellContent, value: &str) -> String {
    let old = &content.value.raw;
    if !old.is_empty() && content.text.contains(old.as_str()) {
        content.text.replacen(old.as_str(), value, 1)
    } else {
        format!("{} {} is {value}", content.subject, content.facet)
    }
}

/// Whether a cell belongs to Engram's seeded self-knowledge.
pub fn is_capability(cell: &Cell) -> bool {
    cell.content
        .subject
        .eq_ignore_ascii_case(CAPABILITIES_SUBJECT)
}

/// Log a decision; a failure to log is reported, not fatal to the turn.
pub fn log_decision(
    store: &MemoryStore,
    op: &str,
    cells: &[CellId],
    reason: &str,
) -> Option<Decision> {
    match store.record_decision(op, cells, reason) {
        Ok(decision) => Some(decision),
        Err(err) => {
            tracing::warn!(%err, op, "cannot log an agency decision");
            None
        }
    }
}

/// The `memory` import of the agency plugin, over the store. Strength (which the curator
/// decays) and read counts live with the server; Engram's capability facts are not shown
/// to the curator (they are the operator's, not the user's).
pub struct StoreBackend {
    store: Arc<MemoryStore>,
    strength: Mutex<HashMap<CellId, f32>>,
    reads: Mutex<HashMap<CellId, (u32, u64)>>,
}

impl StoreBackend {
    /// A backend over `store`.
    pub fn new(store: Arc<MemoryStore>) -> StoreBackend {
        StoreBackend {
            store,
            strength: Mutex::new(HashMap::new()),
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// Count a read of `id` (a recall that put it into a prompt).
    pub fn note_read(&self, id: CellId) {
        let now = now_ms();
        let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        let entry = reads.entry(id).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = now;
        self.strength
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, 1.0);
    }

    fn item(&self, cell: &Cell) -> MemoryItem {
        let c = &cell.content;
        let (reads, last_read) = self
            .reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cell.id)
            .copied()
            .unwrap_or((0, 0));
        let value = if c.value.shape == Shape::Text {
            c.value.raw.clone()
        } else {
            format!("{}:{}", c.value.shape.prefix(), c.value.raw)
        };
        MemoryItem {
            id: cell.id.to_string(),
            subject: c.subject.clone(),
            facet: c.facet.clone(),
            value,
            statement: c.text.clone(),
            recorded_at_ms: (cell.recorded_at / 1000).max(0) as u64,
            last_read_ms: last_read,
            reads,
            strength: self
                .strength
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&cell.id)
                .copied()
                .unwrap_or(1.0),
        }
    }

    fn cell(&self, id: &str) -> Result<Cell, String> {
        let id: CellId = id.parse().map_err(|_| format!("`{id}` is not a cell id"))?;
        self.store.cell(id).ok_or_else(|| format!("no cell {id}"))
    }

    fn write(&self, fact: &PluginFact) -> Result<CellId, String> {
        let outcome = self
            .store
            .remember(engram_memory::Fact {
                subject: fact.subject.clone(),
                facet: fact.facet.clone(),
                value: bare(&fact.value).to_string(),
                text: Some(fact.statement.clone()),
                ..engram_memory::Fact::default()
            })
            .map_err(|e| e.to_string())?;
        Ok(match outcome {
            engram_memory::Remembered::Created(id)
            | engram_memory::Remembered::Unchanged(id)
            | engram_memory::Remembered::Superseded { id, .. } => id,
        })
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MemoryBackend for StoreBackend {
    fn search(&self, query: &str, limit: u32) -> Result<Vec<MemoryItem>, String> {
        Ok(self
            .store
            .recall(query, None, limit.clamp(1, 256) as usize)
            .iter()
            .filter(|c| !is_capability(&c.cell))
            .map(|c| self.item(&c.cell))
            .collect())
    }

    fn list(&self, offset: u32, limit: u32) -> Result<Vec<MemoryItem>, String> {
        Ok(self
            .store
            .list()
            .iter()
            .filter(|c| !is_capability(c))
            .skip(offset as usize)
            .take(limit as usize)
            .map(|c| self.item(c))
            .collect())
    }

    fn remember(&self, fact: &PluginFact) -> Result<String, String> {
        self.write(fact).map(|id| id.to_string())
    }

    fn forget(&self, id: &str) -> Result<(), String> {
        let cell = self.cell(id)?;
        if is_capability(&cell) {
            return Err("Engram's capability facts are not the curator's to forget".into());
        }
        self.store
            .forget(Selector::Id(cell.id))
            .map_err(|e| e.to_string())?;
        log_decision(
            &self.store,
            "forget",
            &[cell.id],
            &format!(
                "agency round: ({}, {}) decayed below the curator's strength floor without being read",
                cell.content.subject, cell.content.facet
            ),
        );
        Ok(())
    }

    fn supersede(&self, old_id: &str, fact: &PluginFact) -> Result<String, String> {
        let old = self.cell(old_id)?;
        let new = self.write(&PluginFact {
            subject: old.content.subject.clone(),
            facet: old.content.facet.clone(),
            ..fact.clone()
        })?;
        log_decision(
            &self.store,
            "supersede",
            &[old.id, new],
            &format!(
                "agency round: the curator replaced ({}, {})",
                old.content.subject, old.content.facet
            ),
        );
        Ok(new.to_string())
    }

    fn merge(&self, keep_id: &str, drop_ids: &[String]) -> Result<(), String> {
        let keep = self.cell(keep_id)?;
        let mut ids = Vec::new();
        for drop in drop_ids {
            let cell = self.cell(drop)?;
            let same_kappa = cell
                .content
                .subject
                .eq_ignore_ascii_case(&keep.content.subject)
                && cell.content.facet.eq_ignore_ascii_case(&keep.content.facet);
            // A version of the kept κ is its history, not a duplicate to erase.
            if same_kappa || is_capability(&cell) {
                continue;
            }
            self.store
                .forget(Selector::Id(cell.id))
                .map_err(|e| e.to_string())?;
            ids.push(cell.id);
        }
        if !ids.is_empty() {
            ids.push(keep.id);
            log_decision(
                &self.store,
                "merge",
                &ids,
                &format!(
                    "agency round: duplicates folded into ({}, {})",
                    keep.content.subject, keep.content.facet
                ),
            );
        }
        Ok(())
    }

    fn set_strength(&self, id: &str, strength: f32) -> Result<(), String> {
        let cell = self.cell(id)?;
        self.strength
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cell.id, strength.clamp(0.0, 1.0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additive_statements_are_recognised() {
        assert!(is_additive("My hobbies are also hiking."));
        assert!(is_additive("My hobbies are hiking too"));
        assert!(!is_additive("My server's IP is 10.0.0.9"));
        assert!(!is_additive("Actually my server's IP address is 10.0.0.9"));
    }

    #[test]
    fn facets_differing_by_a_qualifier_are_one_property() {
        assert!(same_property("ip", "ip_address"));
        assert!(same_property("phone_number", "phone"));
        assert!(same_property("ip", "ip"));
        assert!(!same_property("name", "dog_name"));
        assert!(!same_property("favourite_colour", "favourite_food"));
    }

    #[test]
    fn synthesis_lists_every_value_once() {
        assert_eq!(synthesis("chess", "hiking"), "chess and hiking");
        assert_eq!(
            synthesis("chess and hiking", "golf"),
            "chess, hiking and golf"
        );
        assert_eq!(synthesis("chess and hiking", "Chess"), "chess and hiking");
        assert_eq!(
            synthesis("French", "German and Italian"),
            "French, German and Italian"
        );
    }

    #[test]
    fn a_collection_grows_unless_the_statement_replaces_it() {
        assert!(collects("allergies", "I'm allergic to peanuts"));
        assert!(collects("languages", "I speak German."));
        assert!(!collects("languages", "I now speak German"));
        assert!(!collects("likes", "Actually, I like tea"));
        assert!(!collects("likes", "I like tea instead"));
        assert!(!collects("city", "I live in York"));
    }

    #[test]
    fn forgetting_everything_names_nothing_else() {
        assert!(forgets_everything("Forget everything you know about me."));
        assert!(forgets_everything("Please delete all my data"));
        assert!(!forgets_everything("Forget everything about my wife"));
        assert!(!forgets_everything("Forget my server's IP"));
    }

    #[test]
    fn a_collection_keeps_the_items_a_forget_does_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(dir.path(), engram_memory::MemoryConfig::durable()).unwrap();
        let fact = |facet: &str, value: &str| engram_memory::Fact {
            text: Some(format!("I {facet} {value}")),
            ..engram_memory::Fact::new("user", facet, value)
        };
        store
            .remember(fact("allergies", "cats, dogs and bees"))
            .unwrap();
        store.remember(fact("city", "Lyon and Paris")).unwrap();
        let cell = |facet: &str| store.get("user", facet, None).unwrap();
        assert_eq!(
            kept_items(&cell("allergies"), "Forget that I'm allergic to dogs"),
            Some(("cats and bees".into(), "dogs".into()))
        );
        assert_eq!(
            restated(&cell("allergies").content, "cats and bees"),
            "I allergies cats and bees"
        );
        // Every item named, none named, or not a collection: the whole κ goes.
        assert_eq!(
            kept_items(&cell("allergies"), "Forget cats, dogs and bees"),
            None
        );
        assert_eq!(kept_items(&cell("allergies"), "Forget my allergies"), None);
        assert_eq!(kept_items(&cell("city"), "Forget Paris"), None);
    }

    #[test]
    fn forget_terms_drop_the_request_words() {
        assert_eq!(forget_terms("Forget my server's IP"), vec!["ip", "server"]);
        assert_eq!(forget_terms("Please forget where I live"), vec!["live"]);
    }
}
