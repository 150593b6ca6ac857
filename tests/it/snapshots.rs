//! Snapshot tests of the shipped birthday messages, per locale and channel, with the volatile
//! parts redacted (multipart boundary; Date and Message-ID are deterministic here, but redacted
//! all the same so a change of clock or key does not churn the snapshots).
//!
//! Snapshots live in tests/snapshots/. A missing snapshot is written and the test fails (so a
//! new one is never accepted silently); `UPDATE_SNAPSHOTS=1 cargo test` rewrites them after an
//! intended template change — review the diff before committing.

use std::path::{Path, PathBuf};

use ritualist::app::{Definitions, compose, sample_customers};
use ritualist::config::Config;
use ritualist::domain::{Channel, Locale};
use ritualist::plan::day_start;

use crate::harness::REPO;

fn redact(mime: &str) -> String {
    let mut boundary = None;
    let mut out = Vec::new();
    for line in mime.split("\r\n") {
        if let Some(b) = line
            .trim()
            .strip_prefix("boundary=\"")
            .and_then(|b| b.strip_suffix('"'))
        {
            boundary = Some(b.to_string());
        }
        let l = if line.starts_with("Date: ") {
            "Date: [redacted]".to_string()
        } else if line.starts_with("Message-ID: ") {
            "Message-ID: [redacted]".to_string()
        } else {
            line.to_string()
        };
        out.push(l);
    }
    let mut s = out.join("\n");
    if let Some(b) = boundary {
        s = s.replace(&b, "[boundary]");
    }
    s
}

fn check_snapshot(name: &str, actual: &str) {
    let path: PathBuf = Path::new(REPO)
        .join("tests/snapshots")
        .join(format!("{name}.snap"));
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    match std::fs::read_to_string(&path) {
        Ok(expected) if !update => {
            assert_eq!(
                actual,
                expected,
                "snapshot {} differs; if intended, rerun with UPDATE_SNAPSHOTS=1",
                path.display()
            )
        }
        _ => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            assert!(
                update,
                "new snapshot written to {}: review and commit it",
                path.display()
            );
        }
    }
}

#[test]
fn birthday_messages_per_locale_and_channel() {
    let cfg = Config::load(&Path::new(REPO).join("config/ritualist.yaml")).unwrap();
    let defs = Definitions::load(&cfg).unwrap_or_else(|d| panic!("{d}"));
    let ritual = defs.rituals.iter().find(|r| r.name == "birthday").unwrap();
    let engine = defs.engine(&cfg);
    let idx = engine.ritual_index("birthday").unwrap();
    for customer in sample_customers(&cfg) {
        for locale in ["en", "ro", "ru"] {
            let mut c = customer.clone();
            c.locale = Locale::parse(locale).unwrap();
            let date = jiff::civil::date(2027, 3, 1);
            let start = day_start(date, &c.zone) - jiff::SignedDuration::from_secs(1);
            let end = day_start(date.tomorrow().unwrap(), &c.zone);
            let occasion = engine
                .occurrences_of(idx, &c, start, end)
                .pop()
                .expect("the samples are born on March 1")
                .occasion;
            for channel in [Channel::Email, Channel::Sms] {
                let m = compose(
                    &cfg,
                    &defs.templates,
                    b"snapshot-key",
                    ritual,
                    &c,
                    &occasion,
                    "2027",
                    channel,
                    1_803_974_400,
                )
                .unwrap();
                let body = match channel {
                    Channel::Email => format!(
                        "{}\n=== text ===\n{}\n=== html ===\n{}",
                        redact(&m.payload),
                        m.text.as_deref().unwrap_or(""),
                        m.html.as_deref().unwrap_or("")
                    ),
                    Channel::Sms => {
                        let l = m.sms.unwrap();
                        format!(
                            "{} segment(s), {}, {} units\n{}\n",
                            l.segments,
                            l.encoding.as_str(),
                            l.units,
                            m.payload
                        )
                    }
                };
                check_snapshot(
                    &format!("birthday-{}-{locale}-{channel}", c.external_id),
                    &body,
                );
            }
        }
    }
}
