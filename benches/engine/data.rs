//! The generated database, cached under `<target>/bench-engine/` by customer count and
//! generator version (re-runs skip generation), with a side file recording how it was made.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ritualist::store::Store;
use serde::{Deserialize, Serialize};

use crate::synth::{self, GEN_VERSION};

/// Customers per batch: one transaction of customers, then one of their orders.
const BATCH: u64 = 50_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenStats {
    pub customers: u64,
    pub orders: u64,
    pub with_wedding: u64,
    pub with_feb29_birthday: u64,
    pub without_contact: u64,
    pub zones: usize,
    /// `bulk` (src/store/bulk.rs) or `store` (`upsert_customers` / `upsert_orders`).
    pub loader: String,
    pub seconds: f64,
    pub customers_seconds: f64,
    pub orders_seconds: f64,
    pub db_bytes: u64,
}

/// The database file for `n` customers, generated unless cached.
pub fn ensure(dir: &Path, n: u64) -> (PathBuf, GenStats, bool) {
    let db = dir.join(format!("engine-{n}-g{GEN_VERSION}.db"));
    let meta = db.with_extension("json");
    if db.is_file()
        && let Ok(text) = std::fs::read_to_string(&meta)
        && let Ok(stats) = serde_json::from_str::<GenStats>(&text)
    {
        // A cached file from before a later migration: bring its schema up to date once,
        // so no measured process pays for it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let url = format!("sqlite://{}?mode=rwc", db.display());
            let store = Store::open(&url).await.expect("open the cached database");
            store.checkpoint().await.expect("checkpoint");
        });
        return (db, stats, false);
    }
    let loader = std::env::var("RITUALIST_BENCH_LOADER").unwrap_or_else(|_| "bulk".into());
    assert!(
        loader == "bulk" || loader == "store",
        "RITUALIST_BENCH_LOADER is `bulk` or `store`"
    );
    let tmp = dir.join(format!("engine-{n}-g{GEN_VERSION}.db.partial"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    eprintln!(
        "generating {n} customers with their orders ({loader} loader) into {} …",
        tmp.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut stats = rt.block_on(generate(&tmp, n, &loader));
    drop(rt);
    for suffix in ["-wal", "-shm"] {
        let p = format!("{}{suffix}", tmp.display());
        if let Ok(m) = std::fs::metadata(&p) {
            assert!(
                suffix == "-shm" || m.len() == 0,
                "{p} is not empty after the checkpoint"
            );
            let _ = std::fs::remove_file(&p);
        }
    }
    std::fs::rename(&tmp, &db).expect("rename the generated database");
    stats.db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    std::fs::write(&meta, serde_json::to_string_pretty(&stats).unwrap()).expect("write meta");
    (db, stats, true)
}

async fn generate(path: &Path, n: u64, loader: &str) -> GenStats {
    let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("open the new database");
    // created_at / updated_at of every row: a fixed instant, so the data are reproducible.
    let now = synth::orders_to().as_second();
    let mut stats = GenStats {
        customers: 0,
        orders: 0,
        with_wedding: 0,
        with_feb29_birthday: 0,
        without_contact: 0,
        zones: synth::zone_count(),
        loader: loader.to_string(),
        seconds: 0.0,
        customers_seconds: 0.0,
        orders_seconds: 0.0,
        db_bytes: 0,
    };
    let start = Instant::now();
    let mut first = 0;
    while first < n {
        let last = (first + BATCH).min(n);
        let mut customers = Vec::with_capacity((last - first) as usize);
        let mut orders = Vec::new();
        for i in first..last {
            let (c, o) = synth::customer(i);
            stats.with_wedding += u64::from(!c.custom_dates.is_empty());
            stats.with_feb29_birthday += u64::from(c.birthday.is_some_and(|b| b.is_feb29()));
            stats.without_contact += u64::from(c.email.is_none() && c.phone.is_none());
            customers.push(c);
            orders.extend(o);
        }
        // Orders arrive in time order, customers interleaved, as in a real shop's table.
        orders.sort_by(|a, b| {
            a.ordered_at
                .cmp(&b.ordered_at)
                .then(a.external_id.cmp(&b.external_id))
        });
        let t = Instant::now();
        if loader == "bulk" {
            store
                .bulk_insert_customers(&customers, now)
                .await
                .expect("bulk insert customers");
        } else {
            store
                .upsert_customers(&customers, now)
                .await
                .expect("upsert customers");
        }
        stats.customers_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        if loader == "bulk" {
            store
                .bulk_insert_orders(&orders, now)
                .await
                .expect("bulk insert orders");
        } else {
            let (_, unknown) = store
                .upsert_orders(&orders, now)
                .await
                .expect("upsert orders");
            assert!(
                unknown.is_empty(),
                "orders of unknown customers: {unknown:?}"
            );
        }
        stats.orders_seconds += t.elapsed().as_secs_f64();
        stats.customers += customers.len() as u64;
        stats.orders += orders.len() as u64;
        eprintln!(
            "  {last}/{n} customers, {} orders, {:.0} s",
            stats.orders,
            start.elapsed().as_secs_f64()
        );
        first = last;
    }
    store.checkpoint().await.expect("checkpoint");
    stats.seconds = start.elapsed().as_secs_f64();
    stats
}
