#!/usr/bin/env bash
# Shows where Kannel's ~40 ms stall at the end of a burst comes from (docs/bench-history.md, "Where the default
# path's time goes"): 3 bursts of 200 sendsms requests over 8 keep-alive connections, against a
# stock Kannel (bearerbox + smsbox + fakesmsc) and against one whose processes, one at a time,
# get TCP_NODELAY forced on their sockets by an LD_PRELOAD shim (for the experiment only).
# Needs the packages kannel, kannel-extras, gcc and python3 (.ci/install-peers.sh installs
# Kannel). Ports 23000-23003 (KANNEL_TAIL_PORT sets the first).
set -euo pipefail
base="${KANNEL_TAIL_PORT:-23000}"
for tool in bearerbox smsbox /usr/lib/kannel/test/fakesmsc gcc python3; do
    command -v "$tool" >/dev/null || {
        echo "kannel-tail: $tool is missing (install kannel, kannel-extras, gcc, python3; .ci/install-peers.sh installs Kannel)" >&2
        exit 2
    }
done
dir="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
cat > kannel.conf <<EOF
group = core
admin-port = $base
admin-interface = 127.0.0.1
admin-password = tail
admin-allow-ip = "127.0.0.1"
smsbox-port = $((base + 1))
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-level = 4

group = smsc
smsc = fake
smsc-id = fake
port = $((base + 2))
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $((base + 1))
sendsms-port = $((base + 3))
sendsms-interface = 127.0.0.1
log-level = 4

group = sendsms-user
username = tail
password = tail-secret
user-allow-ip = "127.0.0.1"
EOF
cat > nodelay.c <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static void nodelay(int fd) { int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); }
int connect(int fd, const struct sockaddr *a, socklen_t l) {
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real) real = dlsym(RTLD_NEXT, "connect");
    nodelay(fd);
    return real(fd, a, l);
}
int accept(int fd, struct sockaddr *a, socklen_t *l) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int r = real(fd, a, l);
    if (r >= 0) nodelay(r);
    return r;
}
int accept4(int fd, struct sockaddr *a, socklen_t *l, int f) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int r = real(fd, a, l, f);
    if (r >= 0) nodelay(r);
    return r;
}
EOF
gcc -shared -fPIC -O2 -o nodelay.so nodelay.c -ldl
cat > burst.py <<'EOF'
import socket, sys, threading, time
port = int(sys.argv[1])
q = "/cgi-bin/sendsms?username=tail&password=tail-secret&to=%2B40720000001&text=hi&from=FloareCo"
def worker(n, out, start):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start.wait()
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(f"GET {q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        while True:
            buf += s.recv(65536)
            if b"\r\n\r\n" in buf:
                head, body = buf.split(b"\r\n\r\n", 1)
                cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
                if cl and len(body) >= cl[0]:
                    break
        out.append((t, time.perf_counter()))
    s.close()
for burst in range(3):
    out, start = [], threading.Event()
    threads = [threading.Thread(target=worker, args=(25, out, start)) for _ in range(8)]
    for t in threads: t.start()
    time.sleep(0.2)
    t0 = time.perf_counter(); start.set()
    for t in threads: t.join()
    lat = sorted((e - s) * 1000 for s, e in out)
    end = max(e for _, e in out)
    print(f"  burst {burst}: 200 requests in {(end - t0) * 1000:.1f} ms; median {lat[100]:.2f} ms, slowest {lat[-1]:.2f} ms")
    time.sleep(0.5)
EOF
wait_port() { for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
for shim in none smsbox fakesmsc bearerbox; do
    pre() { if [ "$1" = "$shim" ]; then echo "$dir/nodelay.so"; fi; }
    LD_PRELOAD="$(pre bearerbox)" bearerbox kannel.conf >/dev/null 2>&1 &
    wait_port $((base + 2))
    LD_PRELOAD="$(pre fakesmsc)" /usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r $((base + 2)) -i 1 -m 0 -v 4 "100 200 text unused" >/dev/null 2>&1 &
    LD_PRELOAD="$(pre smsbox)" smsbox kannel.conf >/dev/null 2>&1 &
    wait_port $((base + 3))
    sleep 2
    echo "TCP_NODELAY forced on: $shim"
    python3 burst.py $((base + 3))
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    sleep 1
done
