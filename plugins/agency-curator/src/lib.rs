//! `agency-curator`: a memory maintenance round through the `memory` import.
//!
//! One round looks at up to `budget` live cells and:
//! 1. **dedupes**: cells with the same κ (subject, facet) and the same value
//!    are merged into the most recently written one;
//! 2. **merges near-identical** cells: same κ, and statements whose token
//!    Jaccard overlap is ≥ 0.8, are merged likewise (the newest is kept);
//! 3. **decays** cells not read for a day: strength × 0.9 per round, and a
//!    never-read cell whose strength falls under 0.05 is forgotten.

use engram_plugin_sdk::agency::{clock, log, memory, Guest, MemoryItem, RoundReport};
use std::collections::{BTreeMap, BTreeSet};

/// Statement overlap at which two same-κ cells count as the same fact.
pub const NEAR_IDENTICAL: f32 = 0.8;
/// Strength multiplier per round for cells unread for [`DECAY_AFTER_MS`].
pub const DECAY: f32 = 0.9;
/// Cells unread this long decay.
pub const DECAY_AFTER_MS: u64 = 24 * 3600 * 1000;
/// Never-read cells weaker than this are forgotten.
pub const FORGET_BELOW: f32 = 0.05;

fn tokens(text: &str) -> BTreeSet<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '.' || c == ':'))
        .map(|t| t.trim_matches('.'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

fn jaccard(a: &str, b: &str) -> f32 {
    let (a, b) = (tokens(a), tokens(b));
    let u = a.union(&b).count();
    if u == 0 {
        1.0
    } else {
        a.intersection(&b).count() as f32 / u as f32
    }
}

fn round(budget: u32) -> Result<RoundReport, String> {
    let now = clock::now_ms();
    let mut items: Vec<MemoryItem> = Vec::new();
    let page = 64u32;
    while (items.len() as u32) < budget {
        let got = memory::list_items(items.len() as u32, page.min(budget - items.len() as u32))?;
        if got.is_empty() {
            break;
        }
        items.extend(got);
    }
    let mut report = RoundReport {
        examined: items.len() as u32,
        merged: 0,
        forgotten: 0,
        decayed: 0,
        notes: Vec::new(),
    };

    // Group by κ; inside a group, newest first.
    let mut groups: BTreeMap<(String, String), Vec<&MemoryItem>> = BTreeMap::new();
    for it in &items {
        groups
            .entry((it.subject.clone(), it.facet.clone()))
            .or_default()
            .push(it);
    }
    let mut gone: BTreeSet<&str> = BTreeSet::new();
    for ((subject, facet), mut cells) in groups {
        cells.sort_by(|a, b| {
            b.recorded_at_ms
                .cmp(&a.recorded_at_ms)
                .then(a.id.cmp(&b.id))
        });
        for i in 0..cells.len() {
            if gone.contains(cells[i].id.as_str()) {
                continue;
            }
            let keep = cells[i];
            let drops: Vec<String> = cells[i + 1..]
                .iter()
                .filter(|c| !gone.contains(c.id.as_str()))
                .filter(|c| {
                    c.value == keep.value
                        || jaccard(&c.statement, &keep.statement) >= NEAR_IDENTICAL
                })
                .map(|c| c.id.clone())
                .collect();
            if drops.is_empty() {
                continue;
            }
            memory::merge(&keep.id, &drops)?;
            report.merged += drops.len() as u32;
            report.notes.push(format!(
                "merged {} into {} ({subject}/{facet})",
                drops.join(","),
                keep.id
            ));
            for c in &cells[i + 1..] {
                if drops.contains(&c.id) {
                    gone.insert(c.id.as_str());
                }
            }
        }
    }

    for it in items.iter().filter(|it| !gone.contains(it.id.as_str())) {
        let last = it.last_read_ms.max(it.recorded_at_ms);
        if now.saturating_sub(last) < DECAY_AFTER_MS {
            continue;
        }
        let strength = it.strength * DECAY;
        if it.reads == 0 && strength < FORGET_BELOW {
            memory::forget(&it.id)?;
            report.forgotten += 1;
            report.notes.push(format!(
                "forgot {} (never read, strength {strength:.3})",
                it.id
            ));
        } else {
            memory::set_strength(&it.id, strength)?;
            report.decayed += 1;
        }
    }
    log::log(
        log::Level::Info,
        &format!(
            "curator round: examined {}, merged {}, forgot {}, decayed {}",
            report.examined, report.merged, report.forgotten, report.decayed
        ),
    );
    Ok(report)
}

struct Curator;

impl Guest for Curator {
    fn run_round(budget: u32) -> Result<RoundReport, String> {
        round(budget)
    }
}

engram_plugin_sdk::agency::export_agency!(Curator);
