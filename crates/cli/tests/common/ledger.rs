//! Writers that check every answer against what they know (a ledger),
//! for scenarios that restart servers under load: a writer never retries a
//! write whose answer was lost (the client's own resends within its
//! deadline aside); it re-reads the key instead and carries on from what it
//! holds, so every acknowledged answer can be checked exactly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use num_bigint::BigInt;
use ringkv_client::{Client, Outcome};

/// What a writer knows of one key: the last value it saw acknowledged,
/// and writes whose answer was lost (each may take effect later, once).
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub value: Option<(i64, String)>,
    pub in_doubt: Vec<(i64, String)>,
}

pub type Ledger = Arc<Mutex<HashMap<u64, Known>>>;

/// Writes set → testAndSet → testAndSet … on its own keys until `stop`,
/// checking every answer against what it knows. A write whose answer is
/// lost is never resent; a later answer showing its value settles it.
async fn writer(client: Client, w: u64, ledger: Ledger, acks: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let k = w * 1_000_000 + i / 4;
        let big = BigInt::from(k);
        let known = ledger.lock().unwrap().get(&k).cloned().unwrap_or_default();
        let data = format!("{k}-{i}");
        let (result, next) = match &known.value {
            None => (client.set(&big, 1, data.clone()).await, 1),
            Some((v, _)) => (client.test_and_set(&big, 1, data.clone(), *v).await, v + 1),
        };
        let mut l = ledger.lock().unwrap();
        let entry = l.entry(k).or_default();
        match result {
            Ok(r) if r.outcome == Outcome::Success => {
                *entry = Known { value: Some((next, data)), in_doubt: Vec::new() };
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                // Refused: only an earlier in-doubt write may explain it.
                let seen = r.value.as_ref().map(|v| (v.version, String::from_utf8(v.data.to_vec()).unwrap()));
                let explained = seen.as_ref().is_some_and(|s| entry.in_doubt.contains(s));
                assert!(explained, "key {k}: knew {known:?}, wrote {data}, got {r:?}");
                *entry = Known { value: seen, in_doubt: Vec::new() };
            }
            Err(_) => entry.in_doubt.push((next, data)),
        }
        i += 1;
    }
}

pub async fn check_ledger(client: &Client, ledger: &Ledger) -> usize {
    let all: Vec<(u64, Known)> = ledger.lock().unwrap().iter().map(|(k, v)| (*k, v.clone())).collect();
    for (k, known) in &all {
        let got = client.get(&BigInt::from(*k)).await.unwrap().value;
        let got = got.map(|v| (v.version, String::from_utf8(v.data.to_vec()).unwrap()));
        let ok = got == known.value || got.as_ref().is_some_and(|g| known.in_doubt.contains(g));
        assert!(ok, "key {k}: found {got:?}, knew {known:?}");
    }
    all.len()
}

pub fn spawn_writers(
    client: impl Fn() -> Client,
    n: u64,
    ledger: &Ledger,
    acks: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n).map(|w| tokio::spawn(writer(client(), w, ledger.clone(), acks.clone(), stop.clone()))).collect()
}
