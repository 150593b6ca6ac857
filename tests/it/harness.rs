//! `TestApp`: a ritualist instance on a temp folder (config, rituals, templates, outbox)
//! and a fresh database (a SQLite file, or a fresh PostgreSQL database).

use std::path::{Path, PathBuf};

use ritualist::app::{App, ImportKind, import_file};
use ritualist::config::Config;

use crate::peers::{PgDatabase, ScratchDir};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub app: App,
    pub dir: PathBuf,
    _scratch: ScratchDir,
    _pg: Option<PgDatabase>,
}

/// A temp folder with a copy of the repository's rituals and templates.
pub fn project_dir() -> ScratchDir {
    let d = ScratchDir::new("ritualist-app");
    copy_dir(
        &Path::new(REPO).join("config/rituals"),
        &d.path().join("config/rituals"),
    );
    copy_dir(
        &Path::new(REPO).join("config/calendars"),
        &d.path().join("config/calendars"),
    );
    std::fs::copy(
        Path::new(REPO).join("config/segments.yaml"),
        d.path().join("config/segments.yaml"),
    )
    .unwrap();
    copy_dir(
        &Path::new(REPO).join("templates"),
        &d.path().join("templates"),
    );
    d
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// The YAML of a config in `dir` with the given database and delivery section.
pub fn config_yaml(database: &str, delivery: &str) -> String {
    format!(
        "database: {database}\n\
         defaults:\n  time_zone: Europe/Bucharest\n  locale: en\n  country_code: \"40\"\n\
         shop:\n  name: Floare & Co\n  url: https://floare.example\n  from_email: hello@floare.example\n\
         rituals: rituals\ntemplates: ../templates\n\
         links:\n  unsubscribe: https://floare.example/unsubscribe\n\
         engine:\n  default_calendar: ro\n  frequency_caps:\n    - {{ max: 3, days: 7 }}\n\
         delivery:\n  outbox_dir: ../outbox\n{delivery}"
    )
}

impl TestApp {
    /// `None` when the database is PostgreSQL and no server is reachable (outside CI).
    pub async fn start(db: Db, delivery: &str) -> Option<TestApp> {
        TestApp::start_with_clock(db, delivery, ritualist::clock::SystemClock::shared()).await
    }

    /// [`TestApp::start`] with the app reading the time from `clock` (a
    /// [`ManualClock`](ritualist::clock::ManualClock) the test moves).
    pub async fn start_with_clock(
        db: Db,
        delivery: &str,
        clock: ritualist::clock::SharedClock,
    ) -> Option<TestApp> {
        let scratch = project_dir();
        let dir = scratch.path().to_path_buf();
        let (url, pg) = match db {
            Db::Sqlite => (dir.join("data/ritualist.db").display().to_string(), None),
            Db::Postgres => {
                let pg = PgDatabase::create()?;
                (pg.url.clone(), Some(pg))
            }
        };
        let cfg_path = dir.join("config/ritualist.yaml");
        std::fs::write(&cfg_path, config_yaml(&url, delivery)).unwrap();
        let cfg = Config::load(&cfg_path).unwrap_or_else(|d| panic!("{d}"));
        let app = App::open_with_clock(cfg, clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Some(TestApp {
            app,
            dir,
            _scratch: scratch,
            _pg: pg,
        })
    }

    /// Imports customers from CSV text (header included); returns the rejected lines.
    pub async fn customers(&self, csv: &str) -> Vec<(u64, String)> {
        let path = self.dir.join(format!(
            "customers-{}.csv",
            ritualist::store::random_token()
        ));
        std::fs::write(&path, csv).unwrap();
        let r = import_file(
            &self.app.store,
            &self.app.cfg,
            ImportKind::Customers,
            &path,
            None,
            None,
            ritualist::clock::now().as_second(),
            &mut |_| {},
        )
        .await
        .unwrap();
        r.errors
    }

    /// Imports orders from CSV text (header included); returns the rejected lines.
    pub async fn orders(&self, csv: &str) -> Vec<(u64, String)> {
        let path = self
            .dir
            .join(format!("orders-{}.csv", ritualist::store::random_token()));
        std::fs::write(&path, csv).unwrap();
        import_file(
            &self.app.store,
            &self.app.cfg,
            ImportKind::Orders,
            &path,
            None,
            None,
            ritualist::clock::now().as_second(),
            &mut |_| {},
        )
        .await
        .unwrap()
        .errors
    }

    /// Every ledger row, in id order.
    pub async fn rows(&self) -> Vec<ritualist::store::DeliveryRow> {
        self.app.store.deliveries().await.unwrap()
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    pub fn outbox_emails(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.outbox().join("email"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn outbox_sms(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.outbox().join("sms.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn statuses(&self) -> Vec<(String, String, String)> {
        self.app
            .store
            .deliveries()
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                (
                    d.channel,
                    d.status.to_string(),
                    d.reason.unwrap_or_default(),
                )
            })
            .collect()
    }
}

pub fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// Both databases, for tests that must hold on each.
pub const BOTH: [Db; 2] = [Db::Sqlite, Db::Postgres];

pub const HEADER: &str =
    "external_id,first_name,last_name,email,phone,locale,time_zone,birthday,preferred_channel\n";

/// `n` customers `<prefix>0`, `<prefix>1`, … named Emma, born on 5 May, preferring email.
pub fn born_on_may_5(prefix: &str, n: usize) -> String {
    let mut csv = HEADER.to_string();
    for i in 0..n {
        csv.push_str(&format!(
            "{prefix}{i},Emma,Test,user{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
        ));
    }
    csv
}

/// A copy of the repository as a newcomer gets it: config, rituals, templates, samples.
pub fn newcomer_checkout() -> ScratchDir {
    let d = ScratchDir::new("ritualist-checkout");
    for sub in ["config", "templates", "samples"] {
        copy_dir(&Path::new(REPO).join(sub), &d.path().join(sub));
    }
    d
}

/// The `ritualist` binary, run in `dir`, with no environment overrides leaking in.
pub fn ritualist_cmd(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ritualist"));
    c.current_dir(dir)
        .env_remove("RITUALIST_DATABASE_URL")
        .env_remove("RITUALIST_CONFIG");
    c
}

/// Runs `ritualist ARGS` in `dir` to completion.
pub fn ritualist(dir: &Path, args: &[&str]) -> std::process::Output {
    ritualist_cmd(dir).args(args).output().unwrap()
}

/// Waits (bounded) for a child to exit; kills it and panics when it does not.
pub fn wait_exit(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The address a daemon logs as `listening on ADDR` on its stderr (a piped `child`), read on
/// a thread that keeps draining the pipe; `Err` with the whole log when it never listened.
pub fn listening_on(
    child: &mut std::process::Child,
) -> std::sync::mpsc::Receiver<Result<String, String>> {
    listening_on_watched(child).0
}

/// [`listening_on`], and the daemon's log as it comes ([`LogWatch`]).
pub fn listening_on_watched(
    child: &mut std::process::Child,
) -> (std::sync::mpsc::Receiver<Result<String, String>>, LogWatch) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (tx, rx) = std::sync::mpsc::channel();
    let tx_end = tx.clone();
    let sent = std::sync::Arc::new(AtomicBool::new(false));
    let sent_end = sent.clone();
    let each = move |line: &str| {
        if !sent.load(Ordering::SeqCst)
            && let Some(i) = line.find("listening on ")
        {
            let addr: String = line[i + 13..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            let _ = tx.send(Ok(addr));
            sent.store(true, Ordering::SeqCst);
        }
    };
    // The whole log when it never listened.
    let end = move |log: String| {
        if !sent_end.load(Ordering::SeqCst) {
            let _ = tx_end.send(Err(log));
        }
    };
    (rx, LogWatch::start_with(child, each, end))
}

/// A child's stderr (piped), read line by line on a thread that keeps draining the pipe:
/// a test waits for what the daemon logs (ticks done, a shutdown) instead of sleeping.
#[derive(Clone)]
pub struct LogWatch(std::sync::Arc<(std::sync::Mutex<LogState>, std::sync::Condvar)>);

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    closed: bool,
}

impl LogWatch {
    /// Starts reading `child`'s piped stderr.
    pub fn start(child: &mut std::process::Child) -> LogWatch {
        LogWatch::start_with(child, |_| {}, |_| {})
    }

    /// [`LogWatch::start`], calling `each` with every line and `end` with the whole log.
    fn start_with(
        child: &mut std::process::Child,
        mut each: impl FnMut(&str) + Send + 'static,
        end: impl FnOnce(String) + Send + 'static,
    ) -> LogWatch {
        use std::io::{BufRead, BufReader};
        let stderr = child.stderr.take().expect("stderr is piped");
        let watch = LogWatch(Default::default());
        let w = watch.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                each(&line);
                let (state, changed) = &*w.0;
                state.lock().unwrap().lines.push(line);
                changed.notify_all();
            }
            let (state, changed) = &*w.0;
            let log = {
                let mut s = state.lock().unwrap();
                s.closed = true;
                s.lines.join("\n")
            };
            changed.notify_all();
            end(log);
        });
        watch
    }

    /// How many lines logged so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let state = self.0.0.lock().unwrap();
        state.lines.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `n` lines in all contain `needle`; `false` when the log ends or
    /// `timeout` passes first.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let (state, changed) = &*self.0;
        let mut s = state.lock().unwrap();
        loop {
            if s.lines.iter().filter(|l| l.contains(needle)).count() >= n {
                return true;
            }
            let now = std::time::Instant::now();
            if s.closed || now >= deadline {
                return false;
            }
            s = changed.wait_timeout(s, deadline - now).unwrap().0;
        }
    }

    /// Waits until the pipe closes (the child exited and the log is read whole).
    pub fn wait_closed(&self) {
        let (state, changed) = &*self.0;
        let mut s = state.lock().unwrap();
        while !s.closed {
            s = changed.wait(s).unwrap();
        }
    }

    /// The log so far.
    pub fn text(&self) -> String {
        self.0.0.lock().unwrap().lines.join("\n")
    }
}
