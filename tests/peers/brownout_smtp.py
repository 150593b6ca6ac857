#!/usr/bin/python3
"""A relay in a brown-out, for ritualist's tests (aiosmtpd, Debian's python3-aiosmtpd).

    brownout_smtp.py PORT DUMP_DIR SCHEDULE

SCHEDULE is a comma-separated cycle of verdicts, one per MAIL command received (over every
connection, in arrival order), repeated for ever:

- `ok`: the transaction is served normally;
- `421`: MAIL gets `421 4.3.2 brown-out` and the connection is closed;
- `450`: MAIL is accepted, RCPT gets `450 4.3.0 try again later`.

Every accepted message is written to DUMP_DIR/<n>.eml; every verdict is appended to
DUMP_DIR/events (`<n> <verdict>`). Prints READY when listening; runs until killed.
"""
import asyncio, os, sys, threading

from aiosmtpd.controller import Controller

port, dump, schedule = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
lock = threading.Lock()
state = {"mail": 0, "accepted": 0}


def log(line):
    with open(os.path.join(dump, "events"), "a") as f:
        f.write(line + "\n")


class Handler:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with lock:
            n = state["mail"]
            state["mail"] += 1
        verdict = schedule[n % len(schedule)]
        log(f"{n} {verdict}")
        if verdict == "421":
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 brown-out, closing the connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.brownout_450 = verdict == "450"
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if getattr(envelope, "brownout_450", False):
            return "450 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with lock:
            state["accepted"] += 1
            n = state["accepted"]
        tmp = os.path.join(dump, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(dump, f"{n}.eml"))
        return "250 2.0.0 OK queued"


controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print("READY", flush=True)
threading.Event().wait()
