#!/usr/bin/env bash
# A mass day end to end against a raw stream of the same rows, in one run (issue #26).
#
# The database is the engine bench's (benches/engine: N customers across 45 zones with their
# orders, generated once and cached under <target>/bench-engine/), the deployment its
# rituals with both channels on the `discard` transport. Each command runs on a fresh copy of
# the database (flushed, then read once, so it is in the page cache as a running daemon's
# database is) as a child of Python, which reads the child's peak RSS (ru_maxrss, its VmHWM)
# and CPU time from wait4()'s rusage, and its wall time:
#
# - raw stream (the baseline): the `sqlite3` CLI (the same SQLite library, the system's
#   build) running `SELECT <the columns the engine reads> FROM customers` to /dev/null;
#   measured before and after the mass day, the faster of the two is the divisor;
# - the issue's other baseline, side by side: a Python sqlite3 loop fetching the same rows
#   (the issue's "raw stream of all customers ≈ 4.3 s" at a million, against which it
#   measured 76 x), also before and after, the faster of the two; both ratios are printed;
# - `ritualist run --once --now 2027-01-01T21:00:00Z` at the default log level: the New Year
#   tick (every customer due), render and ledger, every message sent to `discard`. Time to
#   the first message sent: the copy is polled every 10 ms (Python sqlite3, a reader beside
#   the writer in WAL mode) for a `sent` ledger row. Bytes on stderr are counted;
# - `ritualist plan --date 2027-01-01 --days 1 --format json` (stdout counted, not kept);
# - `ritualist preview new_year --customer <id>` and `ritualist history <id>` of one
#   customer (whole processes, opening the database included), median of 5.
#
#   benches/massday.sh [N] [BINARY]    # N defaults to 1000000; BINARY to
#                                      # <target>/release/ritualist (built if missing)
#   ENGINE_BENCH=<target>/release/deps/engine-<hash> benches/massday.sh   # skip `cargo bench`
#
# Bars (issue #26): run --once <= 35x the raw stream, peak RSS <= 200 MB, first message sent
# within 10x the raw stream, stderr < 1 MB; plan RSS < 200 MB; preview < 50 ms, history
# < 100 ms. Record `uptime` beside the figures: the machine may be shared.
set -euo pipefail
N=${1:-1000000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${2:-$TARGET/release/ritualist}
cd "$REPO"
[ -x "$BIN" ] || cargo build --release --bin ritualist
if [ -n "${ENGINE_BENCH:-}" ]; then
    # An engine bench binary already built (<target>/release/deps/engine-…): no cargo run.
    GEN=$(RITUALIST_BENCH_CUSTOMERS=$N "$ENGINE_BENCH" --bench --db-only)
else
    GEN=$(RITUALIST_BENCH_CUSTOMERS=$N cargo bench --bench engine -- --db-only)
fi
DB=$(sed -n 's/^DATABASE //p' <<<"$GEN")
CFG=$(sed -n 's/^CONFIG //p' <<<"$GEN")
WORK=$TARGET/bench-massday
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
cp -r "$(dirname "$CFG")" "$WORK/config"
sed -i 's/transport: outbox/transport: discard/' "$WORK/config/ritualist.yaml"
echo "$(sed -n 's/^CUSTOMERS/customers/p' <<<"$GEN"), database $DB, binary $BIN"
echo "load before: $(uptime)"
python3 - "$BIN" "$DB" "$WORK" "$N" <<'PY'
import os, shutil, sqlite3, statistics, subprocess, sys, threading, time

binary, db, work, n = sys.argv[1:]
who = f"C{int(n) // 2:07d}"  # a customer of the generated base (synth.rs names them C0000000…)
cfg = os.path.join(work, "config", "ritualist.yaml")
# The columns the engine reads (store::people::CUSTOMER_COLS).
COLS = ("id, external_id, first_name, last_name, email, phone, locale, time_zone, birth_year, "
        "birth_md, signup_date, preferred_channel, custom_dates, attributes, order_count, "
        "total_spent_minor, first_order_at, last_order_at")
NOW = "2027-01-01T21:00:00Z"


def fresh_copy(name):
    copy = os.path.join(work, name + ".db")
    for s in ("", "-wal", "-shm"):
        if os.path.exists(copy + s):
            os.remove(copy + s)
    shutil.copyfile(db, copy)
    with open(copy, "rb") as f:
        os.fsync(f.fileno())
        while f.read(1 << 20):
            pass
    return copy


def drop(copy):
    for s in ("", "-wal", "-shm"):
        if os.path.exists(copy + s):
            os.remove(copy + s)


def child(cmd, copy, stdout=subprocess.DEVNULL, stderr=None, env_extra=None, watch=None):
    env = dict(os.environ, RITUALIST_DATABASE_URL=f"sqlite://{copy}?mode=rwc")
    env.pop("RITUALIST_LOG", None)
    env.update(env_extra or {})
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
    first = watch(p, t) if watch else None
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.monotonic() - t
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, f"{cmd}: exit {code}"
    return secs, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime, first


def read_all(reader):
    """`reader(copy, query)`'s command run on a fresh copy: a plain read of the customers."""
    copy = fresh_copy("stream")
    r = child(reader(copy, f"SELECT {COLS} FROM customers"), copy)
    drop(copy)
    return r


def raw_stream():
    return read_all(lambda copy, q: ["sqlite3", copy, q])


# The issue's other baseline: a Python sqlite3 loop over the same rows (each row fetched into
# a tuple, as a program that reads them would), in a child process like the others.
PY_LOOP = (
    "import sqlite3, sys\n"
    "n = 0\n"
    "for _ in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):\n"
    "    n += 1\n"
)


def py_stream():
    return read_all(lambda copy, q: [sys.executable, "-c", PY_LOOP, copy, q])


def first_sent(copy):
    """Polls `copy` every 10 ms; the seconds from `start` to the first `sent` row."""
    def watch(p, start):
        out = {}
        def poll():
            con = None
            while p.poll() is None:
                try:
                    con = con or sqlite3.connect(copy, timeout=0.05)
                    if con.execute("SELECT 1 FROM deliveries WHERE status = 'sent' LIMIT 1").fetchone():
                        out["t"] = time.monotonic() - start
                        return
                except sqlite3.Error:
                    con = None
                time.sleep(0.01)
        th = threading.Thread(target=poll, daemon=True)
        th.start()
        out["thread"] = th
        return out
    return watch


def ritualist(*args):
    return [binary, "--config", cfg, *args]


print(f"{'what':<52} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
row = lambda label, r, extra="": print(f"{label:<52} {r[0]:8.2f} {r[2]:8.2f} {r[1]:12.1f} {extra}")

s1 = raw_stream()
row("raw stream: sqlite3 SELECT customers > /dev/null", s1)
p1 = py_stream()
row("Python sqlite3 loop over the same rows", p1)

copy = fresh_copy("massday")
err_path = os.path.join(work, "massday.stderr")
with open(err_path, "wb") as err:
    run = child(ritualist("run", "--once", "--now", NOW), copy, stdout=subprocess.PIPE,
                stderr=err, watch=first_sent(copy))
watch = run[3]
watch["thread"].join(timeout=5)
first = watch.get("t")
sent = sqlite3.connect(copy).execute(
    "SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()[0]
drop(copy)
stderr_bytes = os.path.getsize(err_path)
row(f"run --once --now {NOW} (discard)", run, f"  {sent} sent")

s2 = raw_stream()
row("raw stream again", s2)
p2 = py_stream()
row("Python sqlite3 loop again", p2)

copy = fresh_copy("plan")
lines = 0
def count_lines(p, start):
    global lines
    lines = sum(1 for _ in p.stdout)
plan = child(ritualist("plan", "--date", "2027-01-01", "--days", "1", "--format", "json"), copy,
             stdout=subprocess.PIPE, watch=count_lines)
row("plan --date 2027-01-01 --days 1 --format json", plan, f"  {lines} decisions")

one = []
for cmd in (("preview", "new_year", "--customer", who), ("history", who)):
    label = " ".join(cmd)
    runs = [child(ritualist(*cmd), copy) for _ in range(5)]
    med = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    one.append(med)
    print(f"{label:<52} {med * 1000:8.0f} ms (median of 5, whole process; CPU {cpu * 1000:.0f} ms), peak RSS {max(r[1] for r in runs):.1f} MB")
drop(copy)

# The faster of the two: on a loaded machine the slower one measures the load, not SQLite.
stream = min(s1[0], s2[0])
verdict = lambda ok: "met" if ok else "MISSED"
print()
stream_cpu = min(s1[2], s2[2])
loop = min(p1[0], p2[0])
print(f"raw stream (the faster of the two): {stream:.2f} s, CPU {stream_cpu:.2f} s; Python sqlite3 loop (the faster of the two): {loop:.2f} s")
print(f"mass day / raw stream (sqlite3 CLI): {run[0] / stream:7.1f} x   (bar <= 35 x: {verdict(run[0] / stream <= 35)}; CPU time {run[2] / stream_cpu:.1f} x)")
print(f"mass day / Python sqlite3 loop:      {run[0] / loop:7.1f} x   (bar <= 35 x: {verdict(run[0] / loop <= 35)})")
print(f"mass day peak RSS:              {run[1]:7.1f} MB  (bar <= 200 MB: {verdict(run[1] <= 200)})")
if first is None:
    print("first message sent:             never seen")
else:
    print(f"first message sent after:       {first:7.2f} s = {first / stream:.1f} x the raw stream  (bar <= 10 x: {verdict(first / stream <= 10)})")
print(f"stderr at the default level:    {stderr_bytes / 1e6:7.3f} MB  (bar < 1 MB: {verdict(stderr_bytes < 1e6)})")
print(f"plan peak RSS:                  {plan[1]:7.1f} MB  (bar < 200 MB: {verdict(plan[1] < 200)})")
print(f"preview of one customer:        {one[0] * 1000:7.0f} ms  (bar < 50 ms: {verdict(one[0] < 0.05)})")
print(f"history of one customer:        {one[1] * 1000:7.0f} ms  (bar < 100 ms: {verdict(one[1] < 0.1)})")
PY
echo "load after: $(uptime)"
