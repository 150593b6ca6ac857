#!/usr/bin/env bash
# Peak RSS of `ritualist import customers` and of `ritualist plan` on the New Year day, in a
# fresh checkout copy with a generated N-customer CSV (issue #26), plan in each format (JSON
# lines, table, CSV). Each command runs as a child
# of Python, which reads the child's peak RSS from wait4()'s rusage (ru_maxrss, the kernel's
# VmHWM of that child) and its wall time.
#
#   benches/memory.sh [N] [BINARY]     # N defaults to 200000; BINARY to target/debug/ritualist
#   TREE=/tmp/old benches/memory.sh 50000 /tmp/old-ritualist   # an older build, its own config
#
# Every customer has an email and a birthday on 1 January, all in Europe/Bucharest: on
# 2027-01-01 each is due (a mass day), so `plan` takes N decisions.
set -euo pipefail
N=${1:-200000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-${CARGO_TARGET_DIR:-$REPO/target}/debug/ritualist}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# An older binary may need the config of its own commit: TREE=<checkout> takes it from there.
TREE=${TREE:-$REPO}
cp -r "$TREE/config" "$TREE/templates" "$TREE/samples" "$WORK/"
python3 - "$N" "$WORK/customers.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("external_id,first_name,last_name,email,phone,locale,time_zone,birthday,preferred_channel\n")
    for i in range(n):
        f.write(f"M{i:07d},Emma,Test,m{i}@example.com,,en,Europe/Bucharest,19{50 + i % 50}-01-01,email\n")
PY
export RITUALIST_DATABASE_URL="sqlite://$WORK/data/bench.db?mode=rwc" RITUALIST_LOG=warn
measure() {
    python3 - "$@" <<'PY'
import os, subprocess, sys, time
label, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
lines = sum(1 for _ in p.stdout)
_, status, ru = os.wait4(p.pid, 0)
secs = time.monotonic() - t
assert os.waitstatus_to_exitcode(status) in (0, 1), f"{label}: exit {status}"
print(f"{label:<40} {secs:8.2f} s   peak RSS {ru.ru_maxrss / 1024:8.1f} MB   {lines} lines out")
PY
}
cd "$WORK"
echo "N=$N, binary $BIN"
measure "import customers ($N rows)" "$BIN" --config config/ritualist.yaml import customers customers.csv
measure "plan --date 2027-01-01 --days 1 (json)" "$BIN" --config config/ritualist.yaml plan --date 2027-01-01 --days 1 --format json
measure "plan --date 2027-01-01 --days 1 (table)" "$BIN" --config config/ritualist.yaml plan --date 2027-01-01 --days 1
measure "plan --date 2027-01-01 --days 1 (csv)" "$BIN" --config config/ritualist.yaml plan --date 2027-01-01 --days 1 --format csv
