#!/usr/bin/env bash
# `ritualist import customers` of a generated N-row CSV against a naive loader (issue #26):
# Python's csv module + sqlite3 executemany, in one transaction, into a schema made by
# `ritualist migrate` (the same tables and indexes), with the same columns. Both run as
# children of Python, which reads each child's peak RSS (ru_maxrss) and CPU time (user +
# system) from wait4()'s rusage, and its wall time; the ratios are ritualist's over the
# baseline's. On a shared machine CPU time is the steadier figure: wall time includes the
# wait for a core.
#
#   benches/import.sh [N] [BINARY]   # N defaults to 200000; BINARY to target/release/ritualist
#                                    # (else target/debug/ritualist)
#   TREE=/tmp/old benches/import.sh 200000 /tmp/old-ritualist   # an older build, its config
#
# The baseline validates nothing: it is the floor of the cost of moving the rows into SQLite.
set -euo pipefail
N=${1:-200000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BIN=${2:-}
if [ -z "$BIN" ]; then
    BIN=$TARGET/release/ritualist
    [ -x "$BIN" ] || BIN=$TARGET/debug/ritualist
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TREE=${TREE:-$REPO}
cp -r "$TREE/config" "$TREE/templates" "$TREE/samples" "$WORK/"
python3 - "$N" "$WORK/customers.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("external_id,first_name,last_name,email,phone,locale,time_zone,birthday,preferred_channel\n")
    for i in range(n):
        f.write(f"M{i:07d},Emma,Test,m{i}@example.com,+4072{i:07d},en,Europe/Bucharest,19{50 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d},email\n")
PY
cat > "$WORK/baseline.py" <<'PY'
import csv, json, sqlite3, sys, time
db, path = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
now = int(time.time())
def rows():
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        for ext, first, last, email, phone, locale, tz, bday, channel in r:
            y, m, d = bday.split("-")
            yield (ext, first or None, last or None, email or None, phone or None, locale, tz,
                   int(y), int(m) * 100 + int(d), None, None, channel or None, "{}",
                   json.dumps({}), now, now)
with con:
    con.executemany(
        "INSERT INTO customers (external_id, first_name, last_name, email, phone, locale, "
        "time_zone, birth_year, birth_md, signup_date, signup_md, preferred_channel, "
        "custom_dates, attributes, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
print(con.execute("SELECT COUNT(*) FROM customers").fetchone()[0])
PY
export RITUALIST_LOG=warn
measure() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, time
label, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
secs = time.monotonic() - t
assert os.waitstatus_to_exitcode(status) == 0, f"{label}: exit {status}"
cpu = ru.ru_utime + ru.ru_stime
print(f"{label:<34} {secs:8.2f} s   CPU {cpu:8.2f} s   peak RSS {ru.ru_maxrss / 1024:7.1f} MB")
PY
}
cd "$WORK"
echo "N=$N ($(du -h customers.csv | cut -f1) CSV), binary $BIN"
RITUALIST_DATABASE_URL="sqlite://$WORK/base/b.db?mode=rwc" "$BIN" --config config/ritualist.yaml migrate >/dev/null
RITUALIST_DATABASE_URL="sqlite://$WORK/data/r.db?mode=rwc" "$BIN" --config config/ritualist.yaml migrate >/dev/null
A=$(RITUALIST_DATABASE_URL="sqlite://$WORK/data/r.db?mode=rwc" measure "ritualist import customers" \
    "$BIN" --config config/ritualist.yaml import customers customers.csv)
echo "$A"
B=$(measure "python csv + sqlite3 executemany" python3 baseline.py base/b.db customers.csv)
echo "$B"
python3 - "$A" "$B" <<'PY'
import re, sys
(ta, ca, ma), (tb, cb, mb) = [map(float, re.findall(r"([\d.]+) (?:s|MB)", s)) for s in sys.argv[1:]]
print(f"ratio ritualist/baseline: wall time {ta / tb:.2f}x, CPU time {ca / cb:.2f}x, peak RSS {ma / mb:.2f}x")
PY
