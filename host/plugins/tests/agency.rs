//! The agency-curator plugin running a maintenance round against a small,
//! real in-memory store implementing the `memory` import.

mod common;

use common::*;
use engram_plugins::{AnsweredBy, Fact, MemoryBackend, MemoryItem, PluginKind, Services};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A minimal store: items by id in insertion order, with merge/forget/strength.
#[derive(Default)]
struct Store {
    items: Mutex<BTreeMap<String, MemoryItem>>,
    log: Mutex<Vec<String>>,
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        id: &str,
        subject: &str,
        facet: &str,
        value: &str,
        statement: &str,
        age_ms: u64,
        reads: u32,
    ) {
        let now = now_ms();
        self.items.lock().unwrap().insert(
            id.into(),
            MemoryItem {
                id: id.into(),
                subject: subject.into(),
                facet: facet.into(),
                value: value.into(),
                statement: statement.into(),
                recorded_at_ms: now - age_ms,
                last_read_ms: 0,
                reads,
                strength: 1.0,
            },
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl MemoryBackend for Store {
    fn search(&self, query: &str, limit: u32) -> Result<Vec<MemoryItem>, String> {
        let q = query.to_lowercase();
        Ok(self
            .items
            .lock()
            .unwrap()
            .values()
            .filter(|i| i.statement.to_lowercase().contains(&q))
            .take(limit as usize)
            .cloned()
            .collect())
    }
    fn list(&self, offset: u32, limit: u32) -> Result<Vec<MemoryItem>, String> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .values()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect())
    }
    fn remember(&self, fact: &Fact) -> Result<String, String> {
        let id = format!("m{}", self.items.lock().unwrap().len() + 1);
        self.put(
            &id,
            &fact.subject,
            &fact.facet,
            &fact.value,
            &fact.statement,
            0,
            0,
        );
        Ok(id)
    }
    fn forget(&self, id: &str) -> Result<(), String> {
        self.log.lock().unwrap().push(format!("forget {id}"));
        self.items
            .lock()
            .unwrap()
            .remove(id)
            .map(drop)
            .ok_or_else(|| format!("no item {id}"))
    }
    fn supersede(&self, old_id: &str, fact: &Fact) -> Result<String, String> {
        self.forget(old_id)?;
        self.remember(fact)
    }
    fn merge(&self, keep_id: &str, drop_ids: &[String]) -> Result<(), String> {
        self.log
            .lock()
            .unwrap()
            .push(format!("merge {keep_id} <- {}", drop_ids.join(",")));
        let mut items = self.items.lock().unwrap();
        if !items.contains_key(keep_id) {
            return Err(format!("no item {keep_id}"));
        }
        for d in drop_ids {
            items.remove(d).ok_or_else(|| format!("no item {d}"))?;
        }
        Ok(())
    }
    fn set_strength(&self, id: &str, strength: f32) -> Result<(), String> {
        let mut items = self.items.lock().unwrap();
        items
            .get_mut(id)
            .map(|i| i.strength = strength)
            .ok_or_else(|| format!("no item {id}"))
    }
}

#[test]
fn curator_round_dedupes_merges_and_decays() {
    let store = Arc::new(Store::default());
    let day = 24 * 3600 * 1000;
    store.put(
        "a1",
        "user.server",
        "ip",
        "ip:10.0.0.7",
        "My server's IP is 10.0.0.7",
        3 * day,
        2,
    );
    store.put(
        "a2",
        "user.server",
        "ip",
        "ip:10.0.0.7",
        "my server's ip is 10.0.0.7",
        1000,
        0,
    );
    store.put("b1", "user", "city", "Lisbon", "I live in Lisbon", 2000, 0);
    store.put(
        "b2",
        "user",
        "city",
        "Lisboa",
        "I live in Lisbon now",
        1000,
        0,
    );
    store.put("c1", "user", "name", "Ana", "My name is Ana", 2 * day, 1);
    let services = Services {
        llm: None,
        memory: Some(store.clone()),
    };
    let host = host_with(services);
    let slot = load(&host, PluginKind::Agency, &default_plugin("agency-curator"));
    let a = slot.agency_round(100);
    assert!(matches!(a.by, AnsweredBy::Plugin { .. }), "{:?}", a.by);
    let report = a.value.expect("round ok");
    assert_eq!(report.examined, 5);
    assert_eq!(report.merged, 2, "{report:?}");
    let items = store.items.lock().unwrap();
    let ids: Vec<&str> = items.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        vec!["a2", "b2", "c1"],
        "newest of each duplicate group kept"
    );
    assert!(
        (items["c1"].strength - 0.9).abs() < 1e-6,
        "unread for 2 days decays"
    );
    assert_eq!(items["a2"].strength, 1.0, "fresh cell untouched");
    assert_eq!(report.decayed, 1);
}

#[test]
fn memory_import_without_a_store_reports_an_error_not_a_crash() {
    let host = host_with(Services::default());
    let slot = load(&host, PluginKind::Agency, &default_plugin("agency-curator"));
    let a = slot.agency_round(10);
    assert!(matches!(a.by, AnsweredBy::Plugin { .. }));
    let err = a.value.expect_err("no store attached");
    assert!(err.contains("no memory store"), "{err}");
}
