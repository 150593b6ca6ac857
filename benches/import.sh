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
#   ORDERS=0 benches/import.sh ...   # customers only (default: then 1.14 N orders, below)
#
# Orders (issue #26: 1.14M orders at 1M customers): `import orders` of a generated file of
# 1.14 N orders of those customers into the database the customer import filled, against
# Python's csv + executemany of `INSERT ... SELECT <the customer's id> FROM customers WHERE
# external_id = ?` in one transaction, then one set-based UPDATE of every customer's order
# facts (count, total, first and last order; not the first order's local month-day, which
# needs each customer's time zone).
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
ORDERS=${ORDERS:-1}
[ "$ORDERS" = 0 ] || python3 - "$N" "$WORK/orders.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("external_id,customer,ordered_at,amount,currency\n")
    for k in range(n * 114 // 100):
        f.write(f"O{k:08d},M{k % n:07d},2026-{1 + k % 12:02d}-{1 + k % 28:02d}T1{k % 10}:30:00+02:00,{10 + k % 90}.50,RON\n")
PY
cat > "$WORK/orders.py" <<'PY'
import csv, sqlite3, sys, time
from datetime import datetime
db, path = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
now = int(time.time())
def rows():
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        for ext, cust, at, amount, currency in r:
            yield (ext, int(datetime.fromisoformat(at).timestamp()), round(float(amount) * 100),
                   currency, now, cust)
with con:
    con.executemany(
        "INSERT INTO orders (external_id, customer_id, ordered_at, amount_minor, currency, created_at) "
        "SELECT ?, id, ?, ?, ?, ? FROM customers WHERE external_id = ?", rows())
    con.execute(
        "UPDATE customers SET order_count = o.n, total_spent_minor = o.total, "
        "first_order_at = o.first, last_order_at = o.last FROM (SELECT customer_id, COUNT(*) AS n, "
        "SUM(amount_minor) AS total, MIN(ordered_at) AS first, MAX(ordered_at) AS last "
        "FROM orders GROUP BY customer_id) AS o WHERE customers.id = o.customer_id")
print(con.execute("SELECT COUNT(*) FROM orders").fetchone()[0])
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
ratio() {
    python3 - "$1" "$2" <<'PY'
import re, sys
(ta, ca, ma), (tb, cb, mb) = [map(float, re.findall(r"([\d.]+) (?:s|MB)", s)) for s in sys.argv[1:]]
print(f"ratio ritualist/baseline: wall time {ta / tb:.2f}x, CPU time {ca / cb:.2f}x, peak RSS {ma / mb:.2f}x")
PY
}
ratio "$A" "$B"
[ "$ORDERS" = 0 ] && exit 0
echo "orders: $(($(wc -l < orders.csv) - 1)) rows ($(du -h orders.csv | cut -f1) CSV)"
A=$(RITUALIST_DATABASE_URL="sqlite://$WORK/data/r.db?mode=rwc" measure "ritualist import orders" \
    "$BIN" --config config/ritualist.yaml import orders orders.csv)
echo "$A"
B=$(measure "python csv + executemany (orders)" python3 orders.py base/b.db orders.csv)
echo "$B"
ratio "$A" "$B"
