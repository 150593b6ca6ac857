#!/usr/bin/python3
"""A TLS SMTP peer for ritualist's tests (aiosmtpd, Debian's python3-aiosmtpd).

    tls_smtp.py MODE PORT CERT KEY DUMP_DIR USER PASSWORD

MODE is `starttls` (STARTTLS required before MAIL and AUTH) or `tls` (implicit TLS from the
first byte). AUTH PLAIN/LOGIN is required and checked against USER/PASSWORD. Every accepted
message is written to DUMP_DIR/<n>.eml with the envelope in `X-Env-*` lines. Prints READY
when listening; runs until killed.
"""
import asyncio, os, ssl, sys, threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, cert, key, dump, user, password = sys.argv[1:8]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
counter = [0]
lock = threading.Lock()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            counter[0] += 1
            n = counter[0]
        # Ask the transport itself whether the bytes arrived over TLS.
        tls = server.transport.get_extra_info("ssl_object") is not None
        head = f"X-Env-From: {envelope.mail_from}\nX-Env-To: {','.join(envelope.rcpt_tos)}\nX-Env-Tls: {tls}\nX-Env-Auth: {session.authenticated}\n"
        tmp = os.path.join(dump, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(tmp, os.path.join(dump, f"{n}.eml"))
        return "250 2.0.0 OK queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok, handled=False)


kwargs = dict(hostname="127.0.0.1", port=int(port), authenticator=authenticator)
if mode == "starttls":
    controller = Controller(Handler(), tls_context=ctx, require_starttls=True, auth_require_tls=True, **kwargs)
else:
    # Implicit TLS: aiosmtpd does not count it for auth_require_tls (it would hide AUTH),
    # but the connection is encrypted from the first byte.
    controller = Controller(Handler(), ssl_context=ctx, auth_require_tls=False, **kwargs)
controller.start()
print("READY", flush=True)
threading.Event().wait()
