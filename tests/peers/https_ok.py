#!/usr/bin/python3
"""An HTTPS endpoint for ritualist's TLS tests: answers every GET and POST with
`202 0: Accepted for delivery` (Kannel's sendsms reply).

    https_ok.py PORT CERT KEY

Prints READY when listening; runs until killed.
"""
import http.server, ssl, sys

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self):
        body = b"0: Accepted for delivery"
        self.send_response(202)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = reply
    do_POST = reply

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("READY", flush=True)
server.serve_forever()
