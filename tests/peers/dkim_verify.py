#!/usr/bin/python3
"""Verifies DKIM signatures with dkimpy (Debian's python3-dkim), an implementation independent
of lettre's signer. The public key is served locally as the DNS TXT record
`<selector>._domainkey.<domain>`, so nothing touches the network.

usage: dkim_verify.py SELECTOR DOMAIN rsa|ed25519 PUBLIC_KEY.der MESSAGE.eml...

PUBLIC_KEY.der is `openssl pkey -pubout -outform DER`. Prints one line per message
(`PASS file` / `FAIL file: reason`) and exits 1 when any message fails, 2 on bad usage.
"""

import base64
import logging
import sys

import dkim


def main(argv):
    if len(argv) < 6 or argv[3] not in ("rsa", "ed25519"):
        print(__doc__, file=sys.stderr)
        return 2
    selector, domain, kind, pubkey_file = argv[1], argv[2], argv[3], argv[4]
    der = open(pubkey_file, "rb").read()
    # RSA: p= is the SubjectPublicKeyInfo; Ed25519 (RFC 8463): p= is the raw 32-byte key,
    # the tail of its 44-byte SubjectPublicKeyInfo.
    raw = der if kind == "rsa" else der[-32:]
    record = b"v=DKIM1; k=" + kind.encode() + b"; p=" + base64.b64encode(raw)
    wanted = (selector + "._domainkey." + domain + ".").lower().encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, str):
            name = name.encode()
        name = name.lower()
        if not name.endswith(b"."):
            name += b"."
        return record if name == wanted else None

    log = logging.getLogger("dkim_verify")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    failed = 0
    for path in argv[5:]:
        msg = open(path, "rb").read()
        try:
            d = dkim.DKIM(msg, logger=log, minkey=1024)
            ok = d.verify(dnsfunc=dnsfunc)
            reason = "" if ok else "signature did not verify"
        except dkim.DKIMException as e:
            ok, reason = False, str(e)
        if ok:
            print("PASS " + path)
        else:
            failed += 1
            print("FAIL " + path + ": " + reason)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
