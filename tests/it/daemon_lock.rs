//! One daemon per SQLite file: a second `run` (daemon or `--once`) is refused with the lock
//! file and the holder's pid, exit code 3; once the first is killed (even with SIGKILL, which
//! leaves the lock file behind), the next one starts.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{newcomer_checkout, ritualist, ritualist_cmd, wait_exit};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_run_on_the_same_sqlite_file_is_refused_until_the_first_is_gone() {
    let dir = newcomer_checkout();
    let lock = dir.path().join("data/ritualist.db.daemon.lock");
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let mut first = Daemon(
        ritualist_cmd(dir.path())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let pid = first.0.id();
    // Bounded wait for the daemon to hold the lock (it writes its pid into the file).
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != pid.to_string() {
        if let Some(status) = first.0.try_wait().unwrap() {
            panic!(
                "the daemon exited ({status}): {}",
                std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "the daemon never took {lock:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    for args in [&["run", "--once"][..], &["run"][..]] {
        let mut second = ritualist_cmd(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_exit(&mut second, Duration::from_secs(30), "the second run");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
        assert!(
            stderr.contains(&lock.display().to_string()),
            "names the lock file: {stderr}"
        );
    }
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the first daemon keeps running"
    );

    // SIGKILL: no cleanup runs, the file stays, but the operating system drops the lock.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert!(lock.exists());
    let out = ritualist(dir.path(), &["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lock comes before the schema: `migrate` and `run` refused by the lock (exit 3) have not
/// created, opened or migrated the database. Before issue #30 `migrate` took no lock and
/// changed the schema under a running daemon.
#[test]
fn a_process_refused_by_the_lock_has_not_touched_the_database() {
    let dir = newcomer_checkout();
    let db = dir.path().join("data/ritualist.db");
    let held =
        ritualist::daemon::lock_database(&format!("sqlite://{}?mode=rwc", db.display())).unwrap();
    let lock = held.as_ref().unwrap().path.clone();
    for args in [&["migrate"][..], &["run", "--once"][..], &["run"][..]] {
        let mut child = ritualist_cmd(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(30), "the refused process");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("pid {}", std::process::id())),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(&lock.file_name().unwrap().to_string_lossy().into_owned()),
            "{args:?}: {stderr}"
        );
        let files: Vec<String> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            ["ritualist.db.daemon.lock"],
            "{args:?}: nothing but the lock file"
        );
    }
    drop(held);
    let out = ritualist(dir.path(), &["migrate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two processes racing to migrate a new SQLite file (two `migrate`, or `migrate` and
/// `run --once`): one migrates it, the other either finds it migrated (it came second) or is
/// refused with exit 3 and the holder named; the file ends with the whole schema.
#[tokio::test]
async fn two_processes_racing_on_a_new_file_end_with_one_migrated_schema() {
    use migration::MigratorTrait;
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
    for (round, other) in [&["migrate"][..], &["run", "--once"][..], &["migrate"][..]]
        .into_iter()
        .enumerate()
    {
        let dir = newcomer_checkout();
        let spawn = |args: &[&str]| {
            ritualist_cmd(dir.path())
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut children = [spawn(&["migrate"]), spawn(other)];
        let mut ran = 0;
        for (i, child) in children.iter_mut().enumerate() {
            let status = wait_exit(child, Duration::from_secs(120), "a racing process");
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            match status.code() {
                Some(0) => ran += 1,
                Some(3) => assert!(
                    stderr.contains("is already running on")
                        && stderr.contains("ritualist.db.daemon.lock"),
                    "round {round}, process {i}: {stderr}"
                ),
                other => panic!("round {round}, process {i}: exit {other:?}: {stderr}"),
            }
        }
        assert!(ran >= 1, "round {round}: one of them migrated");
        let url = format!(
            "sqlite://{}?mode=ro",
            dir.path().join("data/ritualist.db").display()
        );
        let conn = Database::connect(&url).await.unwrap();
        let applied = conn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT version FROM seaql_migrations",
            ))
            .await
            .unwrap()
            .len();
        assert_eq!(
            applied,
            migration::Migrator::migrations().len(),
            "round {round}"
        );
        conn.close().await.unwrap();
    }
}
