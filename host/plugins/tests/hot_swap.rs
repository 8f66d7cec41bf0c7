//! Hot swap under load: 8 clients call the judge slot continuously while the
//! slot is swapped 100 times; no call is lost and every call is answered by
//! the old or the new plugin.

mod common;

use common::*;
use engram_plugins::{AnsweredBy, PluginKind, Services};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[test]
fn swapping_the_judge_100_times_under_8_clients_loses_no_call() {
    let host = host_with(Services::default());
    let jaccard = default_plugin("judge-jaccard");
    let trivial = hostile_plugin("trivial");
    let slot = Arc::new(load(&host, PluginKind::Judge, &jaccard));
    let jaccard_hash = slot.current().hash.clone();
    let trivial_hash = host
        .prepare(PluginKind::Judge, &trivial, &Default::default())
        .unwrap()
        .hash
        .clone();
    let cands = vec![
        candidate("a", "My server's IP is 10.0.0.7", 0.8, 1.0),
        candidate("b", "I live in Lisbon", 0.3, 1.0),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (slot, stop, cands) = (slot.clone(), stop.clone(), cands.clone());
            let (jh, th) = (jaccard_hash.clone(), trivial_hash.clone());
            std::thread::spawn(move || {
                let mut by: BTreeMap<&'static str, u64> = BTreeMap::new();
                let mut wrong = Vec::new();
                let mut issued = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    issued += 1;
                    let a = slot.judge("what is my server's ip?", &cands);
                    let v: Vec<bool> = a.value.iter().map(|v| v.accept).collect();
                    match &a.by {
                        AnsweredBy::Plugin { hash, .. } if *hash == jh && v == [true, false] => {
                            *by.entry("judge-jaccard").or_default() += 1
                        }
                        AnsweredBy::Plugin { hash, .. } if *hash == th && v == [true, true] => {
                            *by.entry("trivial").or_default() += 1
                        }
                        other => wrong.push(format!("{other:?} {v:?}")),
                    }
                }
                (issued, by, wrong)
            })
        })
        .collect();

    let t = std::time::Instant::now();
    for i in 0..100 {
        let next = if i % 2 == 0 { &trivial } else { &jaccard };
        let report = slot.swap_path(next, &Default::default()).expect("swap");
        assert_ne!(report.old_hash, report.new_hash);
    }
    let swap_time = t.elapsed();
    stop.store(true, Ordering::Relaxed);

    let mut total: BTreeMap<&str, u64> = BTreeMap::new();
    let mut issued = 0;
    for c in clients {
        let (n, by, wrong) = c.join().expect("client");
        assert!(
            wrong.is_empty(),
            "calls not answered by either plugin: {wrong:?}"
        );
        issued += n;
        for (k, v) in by {
            *total.entry(k).or_default() += v;
        }
    }
    let answered: u64 = total.values().sum();
    eprintln!("100 swaps in {swap_time:?}; {issued} calls, answered by: {total:?}");
    assert_eq!(
        answered, issued,
        "every call answered by the old or the new plugin"
    );
    assert!(
        total.get("judge-jaccard").copied().unwrap_or(0) > 0
            && total.get("trivial").copied().unwrap_or(0) > 0
    );
    let h = slot.health();
    assert_eq!((h.swaps, h.failures), (100, 0));
    assert_eq!(
        slot.current().hash,
        jaccard_hash,
        "100 swaps end on the first plugin"
    );
}
