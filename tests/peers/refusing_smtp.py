#!/usr/bin/python3
"""A next-hop SMTP server that refuses some recipients and defers others (aiosmtpd, Debian's
python3-aiosmtpd): the recipients' server behind the shop's Postfix in ritualist's tests.

    refusing_smtp.py PORT DUMP_DIR REFUSE DEFER

A recipient whose local part starts with REFUSE gets `550 5.1.1 User unknown` at RCPT, one
starting with DEFER gets `451 4.2.0 Mailbox busy, try again later`; the others are taken and
the message written to DUMP_DIR/<n>.eml with its envelope in `X-Env-*` lines. Every RCPT is
logged to DUMP_DIR/rcpt.log as `<code> <address>`. Prints READY when listening; runs until
killed. (smtp-sink cannot refuse per recipient.)
"""
import os, sys, threading

from aiosmtpd.controller import Controller

port, dump, refuse, defer = sys.argv[1:5]
counter = [0]
lock = threading.Lock()


def log(code, address):
    with lock:
        with open(os.path.join(dump, "rcpt.log"), "a") as f:
            f.write(f"{code} {address}\n")


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith(refuse):
            log(550, address)
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith(defer):
            log(451, address)
            return "451 4.2.0 <%s>: Mailbox busy, try again later" % address
        log(250, address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with lock:
            counter[0] += 1
            n = counter[0]
        head = f"X-Env-From: {envelope.mail_from}\nX-Env-To: {','.join(envelope.rcpt_tos)}\n"
        tmp = os.path.join(dump, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(tmp, os.path.join(dump, f"{n}.eml"))
        return "250 2.0.0 OK queued"


controller = Controller(Handler(), hostname="127.0.0.1", port=int(port))
controller.start()
print("READY", flush=True)
threading.Event().wait()
