//! The daemon picks up edited rituals and templates without a restart, and a broken edit
//! never reaches a customer: the previous set stays in force and the error names the file
//! and line.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{newcomer_checkout, ritualist, ritualist_cmd, wait_exit};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A zone where it is now between 10:00 and 22:00, and its local date: a customer born on that
/// date there is due right away.
fn a_zone_past_ten() -> (&'static str, jiff::civil::Date) {
    let now = ritualist::clock::now();
    for zone in [
        "Europe/Bucharest",
        "America/New_York",
        "America/Los_Angeles",
        "Asia/Vladivostok",
        "Asia/Kolkata",
        "Pacific/Honolulu",
        "Europe/London",
        "Asia/Tokyo",
        "America/Sao_Paulo",
    ] {
        let z = now.to_zoned(jiff::tz::TimeZone::get(zone).unwrap());
        if (10..22).contains(&z.hour()) {
            return (zone, z.date());
        }
    }
    unreachable!("nine zones spread around the world: one is between 10:00 and 22:00")
}

fn import_one(dir: &Path, id: &str) {
    let (zone, date) = a_zone_past_ten();
    std::fs::write(
        dir.join(format!("{id}.csv")),
        format!(
            "external_id,first_name,email,locale,time_zone,birthday\n{id},Zed,{id}@example.com,en,{zone},1990-{:02}-{:02}\n",
            date.month(),
            date.day()
        ),
    )
    .unwrap();
    let out = ritualist(dir, &["import", "customers", &format!("{id}.csv")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The email sent to `id`, once the daemon has written it.
fn wait_for_email(dir: &Path, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(rd) = std::fs::read_dir(dir.join("outbox/email")) {
            for e in rd.filter_map(|e| e.ok()) {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if text.contains(&format!("<{id}@example.com>")) {
                    return text;
                }
            }
        }
        assert!(Instant::now() < deadline, "no email to {id} within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn subject(eml: &str) -> &str {
    eml.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}

#[test]
fn the_daemon_reloads_valid_edits_and_keeps_the_old_set_on_broken_ones() {
    let d = newcomer_checkout();
    let cfg = d.path().join("config/ritualist.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  max_attempts: 8\n", "  max_attempts: 8\n  tick_secs: 1\n");
    std::fs::write(&cfg, text).unwrap();
    let log = d.path().join("daemon.log");
    let mut daemon = Daemon(
        ritualist_cmd(d.path())
            .arg("run")
            .env("RITUALIST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let subject_file = d.path().join("templates/birthday/en/subject.hbs");

    // 1. A valid set: the first customer gets the shipped subject.
    import_one(d.path(), "first");
    assert!(subject(&wait_for_email(d.path(), "first")).starts_with("Happy birthday, Zed!"));

    // 2. A broken edit: reported with file and line, and the old set keeps working.
    std::fs::write(&subject_file, "BROKEN {{#if customer.first_name}}Hi\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("still running the previous set")
    {
        assert!(
            Instant::now() < deadline,
            "no reload error logged: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("templates/birthday/en/subject.hbs:2:"),
        "{logged}"
    );
    import_one(d.path(), "second");
    let s = subject(&wait_for_email(d.path(), "second")).to_string();
    assert!(
        s.starts_with("Happy birthday, Zed!") && !s.contains("BROKEN"),
        "the broken template reached a customer: {s}"
    );

    // 3. A valid edit, announced with SIGHUP: in force for the next message.
    std::fs::write(
        &subject_file,
        "RELOADED-7731 for {{default customer.first_name \"you\"}}\n",
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("reloaded: the new rituals and templates are in force")
    {
        assert!(
            Instant::now() < deadline,
            "no reload logged: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    import_one(d.path(), "third");
    assert_eq!(
        subject(&wait_for_email(d.path(), "third")),
        "RELOADED-7731 for Zed"
    );

    let term = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_exit(
        &mut daemon.0,
        Duration::from_secs(20),
        "the daemon after SIGTERM",
    );
    let mut rest = String::new();
    let _ = std::fs::File::open(&log).unwrap().read_to_string(&mut rest);
    assert!(status.success(), "{rest}");
}
