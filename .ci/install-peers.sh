#!/usr/bin/env bash
# Installs and starts everything the test suite talks to, on a fresh Debian machine:
#   - Postfix's smtp-sink (package postfix) as the SMTP peer, and Postfix itself (master,
#     postmap, postqueue; the same package) as the shop's relay in tests/it/postfix_relay.rs,
#   - Kannel bearerbox/smsbox and fakesmsc (packages kannel, kannel-extras) as the SMS gateway,
#   - PostgreSQL (package postgresql) on 127.0.0.1:5432 with trust auth and a `test` database,
#   - aiosmtpd (package python3-aiosmtpd) and openssl for the TLS SMTP peer,
#   - dkimpy (package python3-dkim) as the independent DKIM verifier (tests/peers/dkim_verify.py),
#   - Chromium (package chromium), headless, for the preview page's browser test,
#   - sqlite3 (package sqlite3), which dumps tables for the test-link test (tests/it/inert.rs).
# Idempotent: skips what is already there. The tests start their own smtp-sink and Kannel
# processes on loopback ports; this script only makes sure the binaries and PostgreSQL exist.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_pkgs=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need_pkgs+=(postfix)
[ -x /usr/lib/postfix/sbin/master ] || need_pkgs+=(postfix)
[ -x /usr/sbin/bearerbox ] || need_pkgs+=(kannel)
[ -x /usr/lib/kannel/test/fakesmsc ] || need_pkgs+=(kannel-extras)
command -v pg_ctlcluster >/dev/null 2>&1 || need_pkgs+=(postgresql)
# A TLS-capable SMTP peer for STARTTLS/implicit-TLS/AUTH tests (tests/peers/tls_smtp.py).
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_pkgs+=(python3-aiosmtpd)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# An independent DKIM verifier (dkimpy, with PyNaCl for Ed25519) for tests/it/dkim.rs.
/usr/bin/python3 -c 'import dkim, nacl' >/dev/null 2>&1 || need_pkgs+=(python3-dkim)
# Headless browser for `preview --serve` (tests/it/browser.rs).
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
# Table dumps before and after clicking test links (tests/it/inert.rs).
command -v sqlite3 >/dev/null 2>&1 || need_pkgs+=(sqlite3)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "install-peers: installing ${need_pkgs[*]}"
  # Keep the packages' system services from starting: the tests run their own peers.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

# PostgreSQL: start the cluster if it is not accepting connections, then make sure `test` exists.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -q 'ritualist-ci' "$hba"; then
    # trust on loopback for the test database (CI machine only)
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # ritualist-ci\nlocal all all trust # ritualist-ci' "$hba"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  $SUDO -u postgres psql -h 127.0.0.1 -c 'create database test' >/dev/null 2>&1 \
    || psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null
fi
echo "install-peers: smtp-sink $(command -v smtp-sink || echo /usr/sbin/smtp-sink), bearerbox /usr/sbin/bearerbox, fakesmsc /usr/lib/kannel/test/fakesmsc, chromium /usr/bin/chromium, postgres ok"
