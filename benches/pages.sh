#!/usr/bin/env bash
# The marketer's pages of `preview --serve` against `ritualist plan` on the same generated
# database (issue #28): the calendar of 30 days versus `plan --days 30` (target: within 2×),
# and one customer's story (target: under 100 ms). Not a test: it prints figures.
#
#   benches/pages.sh [N] [BINARY]   # N customers (default 100000); BINARY defaults to
#                                   # target/release/ritualist (build it with --release)
#
# Customers have birthdays spread over the year, one order each spread over the last year
# (thank-you, survey and win-back occasions), locales en/ro/ru, all in Europe/Bucharest.
# Each figure is the wall time of one request (curl) or one command, as the best and the
# median of REPEAT runs (default 3; the story STORY_REPEAT, default 50), after one warm-up.
set -euo pipefail
N=${1:-100000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-${CARGO_TARGET_DIR:-$REPO/target}/release/ritualist}
REPEAT=${REPEAT:-3}
STORY_REPEAT=${STORY_REPEAT:-50}
FROM=${FROM:-2027-03-01}
WORK=$(mktemp -d)
SERVER=
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cp -r "$REPO/config" "$REPO/templates" "$REPO/samples" "$WORK/"
python3 - "$N" "$WORK" <<'PY'
import sys, datetime
n, work = int(sys.argv[1]), sys.argv[2]
start = datetime.datetime(2026, 3, 1, 9, 0)
with open(f"{work}/customers.csv", "w") as c, open(f"{work}/orders.csv", "w") as o:
    c.write("external_id,first_name,last_name,email,phone,locale,time_zone,birthday,preferred_channel\n")
    o.write("external_id,customer,ordered_at,amount,currency\n")
    for i in range(n):
        day = datetime.date(1980 + i % 30, 1, 1) + datetime.timedelta(days=(i * 7) % 365)
        locale = ("en", "ro", "ru")[i % 3]
        c.write(f"B{i:07d},Ana,Bench,b{i}@example.com,+4072{i:07d},{locale},Europe/Bucharest,{day},email\n")
        at = start + datetime.timedelta(minutes=(i * 37) % (365 * 24 * 60))
        o.write(f"O{i:07d},B{i:07d},{at:%Y-%m-%dT%H:%M:%SZ},{50 + i % 200}.00,RON\n")
PY
export RITUALIST_DATABASE_URL="sqlite://$WORK/data/bench.db?mode=rwc" RITUALIST_LOG=warn
cd "$WORK"
CFG=config/ritualist.yaml
echo "N=$N customers, binary $BIN, calendar from $FROM"
"$BIN" --config $CFG import customers customers.csv >/dev/null
"$BIN" --config $CFG import orders orders.csv >/dev/null

# best and median of a command's wall time, in ms, over REPEAT runs after a warm-up
timed() {
    local repeat=$1; shift
    python3 - "$repeat" "$@" <<'PY'
import subprocess, sys, time
repeat, cmd = int(sys.argv[1]), sys.argv[2:]
def run():
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return (time.monotonic() - t) * 1000
run()
xs = sorted(run() for _ in range(repeat))
print(f"{xs[0]:.1f} {xs[len(xs) // 2]:.1f}")
PY
}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" --config $CFG preview --serve --port "$PORT" >/dev/null 2>serve.log &
SERVER=$!
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
URL="http://127.0.0.1:$PORT"
CUSTOMER=B0000042

read -r plan_best plan_med < <(timed "$REPEAT" "$BIN" --config $CFG plan --date "$FROM" --days 30 --format json)
read -r cal_best cal_med < <(timed "$REPEAT" curl -sf "$URL/calendar?from=$FROM&days=30")
read -r csv_best csv_med < <(timed "$REPEAT" curl -sf "$URL/calendar?from=$FROM&days=30&format=csv")
read -r story_best story_med < <(timed "$STORY_REPEAT" curl -sf "$URL/customers/$CUSTOMER")
read -r hist_best hist_med < <(timed "$REPEAT" "$BIN" --config $CFG history "$CUSTOMER" --format json)
read -r res_best res_med < <(timed "$REPEAT" curl -sf "$URL/results")
decisions=$("$BIN" --config $CFG plan --date "$FROM" --days 30 --format json | wc -l)

printf '%-44s %10s %10s\n' "" "best ms" "median ms"
printf '%-44s %10s %10s\n' "plan --days 30 ($decisions decisions)" "$plan_best" "$plan_med"
printf '%-44s %10s %10s\n' "GET /calendar (30 days)" "$cal_best" "$cal_med"
printf '%-44s %10s %10s\n' "GET /calendar (30 days, CSV)" "$csv_best" "$csv_med"
printf '%-44s %10s %10s\n' "GET /customers/$CUSTOMER (story)" "$story_best" "$story_med"
printf '%-44s %10s %10s\n' "history $CUSTOMER (CLI, incl. start-up)" "$hist_best" "$hist_med"
printf '%-44s %10s %10s\n' "GET /results" "$res_best" "$res_med"
python3 - "$cal_med" "$plan_med" "$story_med" <<'PY'
import sys
cal, plan, story = map(float, sys.argv[1:])
print(f"calendar / plan = {cal / plan:.2f}x (target <= 2x); story {story:.1f} ms (target < 100 ms)")
PY
