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
