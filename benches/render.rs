//! Render throughput: the full per-message path against a raw Handlebars render loop of the
//! same templates, side by side in one run (machines are noisy: compare ratios, not times).
//!
//! - baseline: a raw Handlebars render loop of the same three templates (subject, HTML, text):
//!   `Handlebars::render(name, &json)` on the compiled registry with a ready JSON context;
//! - full: what dispatch does for a first attempt: a stored customer row → planner facts, the
//!   stored occasion (JSON) → template context → subject, HTML, text → the complete MIME
//!   message with its Message-ID and List-Unsubscribe headers.
//!
//! Bar (issue #4): full ≥ 0.5 × baseline. Run: `cargo bench --bench render`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use ritualist::app::{Definitions, FactsBuilder, compose, message_context};
use ritualist::config::Config;
use ritualist::domain::Channel;
use ritualist::plan::{Occasion, day_start};
use ritualist::render::Part;
use ritualist::store::CustomerRow;

fn rate(mut f: impl FnMut(), budget: Duration) -> f64 {
    // Warm up, then count iterations within the budget.
    for _ in 0..200 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = Config::load(&root.join("config/ritualist.yaml")).expect("config");
    let defs = Definitions::load(&cfg).expect("definitions");
    let ritual = defs
        .rituals
        .iter()
        .find(|r| r.name == "birthday")
        .expect("birthday ritual")
        .clone();
    let row = CustomerRow {
        id: 42,
        external_id: "C00042".into(),
        first_name: Some("Ana".into()),
        last_name: Some("Popescu".into()),
        email: Some("ana.popescu@example.com".into()),
        phone: Some("+40721234567".into()),
        locale: "ro".into(),
        time_zone: "Europe/Bucharest".into(),
        birth_year: Some(1990),
        birth_md: Some(301),
        signup_date: Some("2019-05-04".into()),
        preferred_channel: Some("email".into()),
        custom_dates: "{}".into(),
        attributes: r#"{"tier":"gold"}"#.into(),
        order_count: 3,
        total_spent_minor: 45_000,
        first_order_at: Some(1_600_000_000),
        last_order_at: Some(1_790_000_000),
    };
    let date = jiff::civil::date(2027, 3, 1);
    let key = b"bench-key";
    let now = 1_803_974_400;

    let mut builder = FactsBuilder::new(&cfg);
    let facts = builder.facts(&row, Vec::new());
    let engine = defs.engine(&cfg);
    let idx = engine.ritual_index("birthday").expect("birthday");
    let occasion = engine
        .occurrences_of(
            idx,
            &facts,
            day_start(date, &facts.zone) - jiff::SignedDuration::from_secs(1),
            day_start(date.tomorrow().unwrap(), &facts.zone),
        )
        .pop()
        .expect("born on March 1")
        .occasion;
    let stored_occasion = serde_json::to_string(&occasion).expect("occasion as JSON");
    let mut ctx = message_context(
        &cfg,
        &ritual.name,
        &facts,
        &occasion,
        "https://floare.example/unsubscribe?t=x",
        None,
    );
    // What the renderer adds for the layout (`<html lang="{{lang}}">`) before rendering.
    ctx["lang"] = "ro".into();

    // `cargo test --all-targets` runs benches without `--bench`, in a debug build: there the
    // run is a smoke test of the whole path (one short round), not a measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    let (budget, rounds) = if measuring {
        (Duration::from_millis(1500), 5)
    } else {
        (Duration::from_millis(100), 1)
    };
    let (mut base, mut full) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        base.push(rate(
            || {
                for part in [Part::Subject, Part::Html, Part::Text] {
                    black_box(
                        defs.templates
                            .render_raw(&ritual.template, "ro", part, black_box(&ctx))
                            .unwrap(),
                    );
                }
            },
            budget,
        ));
        full.push(rate(
            || {
                let f = builder.facts(black_box(&row), Vec::new());
                let o: Occasion = serde_json::from_str(black_box(&stored_occasion)).unwrap();
                black_box(
                    compose(
                        &cfg,
                        &defs.templates,
                        key,
                        &ritual,
                        &f,
                        &o,
                        "2027",
                        Channel::Email,
                        now,
                    )
                    .unwrap(),
                );
            },
            budget,
        ));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (b, f) = (median(&mut base), median(&mut full));
    if !measuring {
        eprintln!(
            "render bench: smoke run only, every path rendered (a debug build measures nothing; run it with `cargo bench --bench render`)"
        );
        return;
    }
    println!("raw handlebars render loop (subject + html + text): {b:>10.0} msg/s");
    println!("full per-message (row → facts → context → render → MIME):   {f:>10.0} msg/s");
    println!("ratio full / baseline: {:.2} (bar: >= 0.50)", f / b);
}
