//! `import` streams the file and stores it in batches (issue #26): a file of several batches
//! with bad rows scattered through it reports every bad line and imports every other row,
//! on both databases; importing it again updates every row, and a refused value keeps the
//! stored one.

use ritualist::app::{ImportKind, import_file};

use crate::harness::{BOTH, HEADER, TestApp};

/// Rows of the file: more than two batches (`app::import::BATCH` is 10,000).
const ROWS: usize = 23_456;

/// The file, the lines that must be rejected, and how many good rows it has.
fn file(bad_email_for: Option<usize>) -> (String, Vec<u64>, usize) {
    let mut csv = String::from(HEADER.trim_end());
    csv.push_str(",date:wedding\n");
    let mut bad = Vec::new();
    let mut good = 0;
    for i in 0..ROWS {
        let line = i as u64 + 2;
        let email = match bad_email_for {
            Some(k) if k == i => "not-an-email".to_string(),
            _ => format!("u{i}@example.com"),
        };
        let wedding = if i % 7 == 0 { "2015-06-20" } else { "" };
        if i % 997 == 13 {
            // A bad birthday rejects the row.
            csv.push_str(&format!(
                "s{i},Ana,Pop,{email},,ro,Europe/Bucharest,1990-13-45,email,{wedding}\n"
            ));
            bad.push(line);
        } else if i % 4999 == 7 && i > 0 {
            // A duplicate of an earlier, kept id.
            csv.push_str(&format!(
                "s0,Ana,Pop,{email},,ro,Europe/Bucharest,1990-01-01,email,{wedding}\n"
            ));
            bad.push(line);
        } else {
            csv.push_str(&format!(
                "s{i},Ana,Pop,{email},,ro,Europe/Bucharest,1990-01-01,email,{wedding}\n"
            ));
            good += 1;
        }
    }
    (csv, bad, good)
}

#[tokio::test]
async fn a_file_of_many_batches_reports_every_bad_line_and_imports_the_rest() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, "").await else {
            continue;
        };
        let (csv, bad, good) = file(None);
        let path = t.dir.join("many.csv");
        std::fs::write(&path, &csv).unwrap();
        let mut calls = Vec::new();
        let r = import_file(
            &t.app.store,
            &t.app.cfg,
            ImportKind::Customers,
            &path,
            None,
            None,
            1_800_000_000,
            &mut |p| calls.push(p),
        )
        .await
        .unwrap();
        let lines: Vec<u64> = r.errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            lines,
            bad,
            "{db:?}: {:?}",
            &r.errors[..3.min(r.errors.len())]
        );
        assert!(r.errors.iter().any(|(_, why)| why.contains("duplicate")));
        assert_eq!(r.rows, ROWS, "{db:?}");
        assert_eq!(
            (r.stats.inserted, r.stats.updated),
            (good as u64, 0),
            "{db:?}"
        );
        assert_eq!(t.app.store.customer_count().await.unwrap(), good as i64);
        // Progress after every batch, in bytes of the file, ending at its size.
        assert!(calls.len() >= 3, "{db:?}: {calls:?}");
        let last = calls.last().unwrap();
        assert_eq!(
            (last.bytes_read, last.bytes_total, last.rows),
            (csv.len() as u64, csv.len() as u64, ROWS as u64)
        );
        assert!(calls.windows(2).all(|w| w[0].bytes_read <= w[1].bytes_read));

        // Again, with row 20,001's email refused: every row is updated, its email is kept.
        let (csv, bad_again, _) = file(Some(20_001));
        assert_eq!(bad_again, bad);
        std::fs::write(&path, &csv).unwrap();
        let r = import_file(
            &t.app.store,
            &t.app.cfg,
            ImportKind::Customers,
            &path,
            None,
            None,
            1_800_000_100,
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!(
            (r.stats.inserted, r.stats.updated),
            (0, good as u64),
            "{db:?}"
        );
        assert!(r.warnings.iter().any(|w| w.line == 20_003 && w.refused));
        let c = t.app.store.find_customer("s20001").await.unwrap().unwrap();
        assert_eq!(c.email.as_deref(), Some("u20001@example.com"), "{db:?}");
        let c = t.app.store.find_customer("s14").await.unwrap().unwrap();
        assert!(c.custom_dates.contains("2015-06-20"), "{db:?}: {c:?}");
    }
}
