#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for sgwatch's tests: sits between the code under test and moto
server and answers a seeded share of requests with a fault instead of moto's answer.

Faults, chosen at random with the given seed: HTTP 503 (SlowDown), HTTP 500 (InternalError),
HTTP 400 throttling (ThrottlingException, as AWS JSON and query APIs send it), a connection closed
without an answer before the request reaches moto, and one closed after moto has acted on it
(the answer is lost: the caller must cope with its own retry finding the work done).

    faultproxy.py --target http://127.0.0.1:PORT --rate 0.1 --seed 7
    faultproxy.py --target http://127.0.0.1:PORT --rate 0 --latency-ms 50   (latency only)
prints `READY http://127.0.0.1:PORT` and `STATS <json>` to stderr every time it is asked
(GET /_faults/stats) or on exit.

    faultproxy.py --target ... --rate 0 --answer InvalidRoleException:3:PutConfigurationRecorder
answers the first 3 requests for that operation (an AWS JSON API's X-Amz-Target, or a query
API's Action) with that AWS error code (HTTP 400) instead of passing them on: a specific answer
AWS gives for a while, such as IAM propagation delays. Repeatable.

    faultproxy.py --target ... --rate 0 --rate-limit SendEmail=14
lets through at most 14 requests for that operation in any one second and answers the rest as
SES v2 does over its sending rate: HTTP 429 TooManyRequestsException ("Maximum sending rate
exceeded."). A REST API's operation is named by its method and path (REST_OPERATIONS). Repeatable.

    faultproxy.py --target ... --rate 0.1 --faults drop-after --fault-operations SendEmail
injects the random faults into those operations only (the others pass untouched);
    faultproxy.py --target ... --rate 0 --slow SendEmail=5000
delays that operation's requests by that many milliseconds before passing them on (a slow answer);
    faultproxy.py --target ... --rate 0 --reject-recipient b@corp.example
answers a SendEmail naming that address as SES does in its sandbox for an unverified recipient:
HTTP 400 MessageRejected, "Email address is not verified. The following identities failed the
check in region ...: b@corp.example". Repeatable.
Stats count each fault in all and per operation (`by_operation`: forwarded, and each fault).
"""

import argparse
import http.client
import http.server
import json
import random
import socket
import sys
import threading
import time
import urllib.parse

FAULTS = ["503", "500", "throttle", "drop-before", "drop-after"]

# REST APIs name the operation by method and path, not a header or form field.
REST_OPERATIONS = {("POST", "/v2/email/outbound-emails"): "SendEmail"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True)
    p.add_argument("--rate", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated kinds to inject")
    p.add_argument("--answer", action="append", default=[], metavar="CODE:N:OPERATION",
                   help="answer the first N requests for OPERATION with AWS error CODE")
    p.add_argument("--latency-ms", type=float, default=0,
                   help="delay every forwarded call by this much, like the round trip to AWS")
    p.add_argument("--rate-limit", action="append", default=[], metavar="OPERATION=N",
                   help="at most N requests per second for OPERATION, the rest answered HTTP 429")
    p.add_argument("--fault-operations", default="",
                   help="comma-separated operations the random faults apply to (default: all)")
    p.add_argument("--slow", action="append", default=[], metavar="OPERATION=MS",
                   help="delay that operation's requests by MS milliseconds")
    p.add_argument("--reject-recipient", action="append", default=[], metavar="ADDRESS",
                   help="answer a SendEmail naming ADDRESS with SES's sandbox rejection of it")
    args = p.parse_args()
    fault_operations = {o for o in args.fault_operations.split(",") if o}
    slow = {}
    for spec in args.slow:
        operation, ms = spec.split("=", 1)
        slow[operation] = float(ms) / 1000
    rejected = {a.lower() for a in args.reject_recipient}
    # operation -> (requests per second, times of the requests let through in the last second)
    limits = {}
    for spec in args.rate_limit:
        operation, per_second = spec.split("=", 1)
        limits[operation] = (int(per_second), [])
    # operation -> [code, how many are left to answer]
    answers = {}
    for spec in args.answer:
        code, count, operation = spec.split(":", 2)
        answers[operation] = [code, int(count)]
    target = urllib.parse.urlsplit(args.target)
    rng = random.Random(args.seed)
    kinds = [f for f in args.faults.split(",") if f in FAULTS]
    lock = threading.Lock()
    stats = {"requests": 0, "answered": 0, "rate_limited": 0, "rejected_recipients": 0,
             **{f: 0 for f in FAULTS}, "by_operation": {}}

    def count(operation, what):
        """One more `what` (forwarded, or a fault's name) for `operation`; the lock is held."""
        per = stats["by_operation"].setdefault(operation or "-", {})
        per[what] = per.get(what, 0) + 1

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def handle_one(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == "/_faults/stats":
                return self.answer(200, json.dumps(stats).encode(), "application/json")
            target_header = self.headers.get("X-Amz-Target") or ""
            operation = target_header.rsplit(".", 1)[-1] if target_header else next(
                (kv[len("Action="):] for kv in body.decode("latin-1").split("&") if kv.startswith("Action=")), "")
            operation = REST_OPERATIONS.get((self.command, urllib.parse.urlsplit(self.path).path), operation)
            if self.over_rate(operation):
                return self.answer(429, b'{"message":"Maximum sending rate exceeded."}', "application/json",
                                   {"x-amzn-ErrorType": "TooManyRequestsException"})
            with lock:
                answer = answers.get(operation)
                if answer and answer[1] > 0:
                    answer[1] -= 1
                    stats["answered"] += 1
                else:
                    answer = None
            if answer:
                message = f"{answer[0]} (injected for {operation})"
                if target_header:
                    return self.answer(400, json.dumps({"__type": answer[0], "message": message}).encode(),
                                       "application/x-amz-json-1.1", {"x-amzn-ErrorType": answer[0]})
                return self.answer(400, f"<ErrorResponse><Error><Type>Sender</Type><Code>{answer[0]}</Code>"
                                        f"<Message>{message}</Message></Error></ErrorResponse>".encode(), "text/xml")
            if operation == "SendEmail" and rejected:
                named = self.rejected_in(body)
                if named:
                    with lock:
                        stats["rejected_recipients"] += 1
                    # SES's sandbox answer for an unverified recipient, as SES v2 (REST-JSON) sends it.
                    message = ("Email address is not verified. The following identities failed the check "
                               f"in region US-EAST-1: {', '.join(named)}")
                    return self.answer(400, json.dumps({"message": message}).encode(), "application/json",
                                       {"x-amzn-ErrorType": "MessageRejected"})
            with lock:
                stats["requests"] += 1
                faulted = not fault_operations or operation in fault_operations
                fault = rng.choice(kinds) if faulted and rng.random() < args.rate else None
                if fault:
                    stats[fault] += 1
                    count(operation, fault)
            if fault == "drop-before":
                return self.drop()
            if fault == "503":
                return self.answer(503, b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>", "text/xml")
            if fault == "500":
                return self.answer(500, b"<Error><Code>InternalError</Code><Message>injected</Message></Error>", "text/xml")
            if fault == "throttle":
                target_header = self.headers.get("X-Amz-Target")
                if target_header or "json" in (self.headers.get("Content-Type") or ""):
                    return self.answer(400, b'{"__type":"ThrottlingException","message":"Rate exceeded (injected)"}',
                                       "application/x-amz-json-1.1", {"x-amzn-ErrorType": "ThrottlingException"})
                return self.answer(400, b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                                        b"<Message>Rate exceeded (injected)</Message></Error></ErrorResponse>", "text/xml")
            if args.latency_ms:
                time.sleep(args.latency_ms / 1000)
            if operation in slow:
                time.sleep(slow[operation])
            with lock:
                count(operation, "forwarded")
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if fault == "drop-after":
                return self.drop()
            extra = {k: v for k, v in resp.getheaders()
                     if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-type", "server", "date")}
            self.answer(resp.status, data, resp.getheader("Content-Type") or "text/plain", extra)

        def rejected_in(self, body):
            """The addresses of a SendEmail request that are to be rejected."""
            try:
                destination = json.loads(body or b"{}").get("Destination") or {}
            except ValueError:
                return []
            addresses = [a for field in ("ToAddresses", "CcAddresses", "BccAddresses")
                         for a in destination.get(field) or []]
            return [a for a in addresses if a.lower() in rejected]

        def over_rate(self, operation):
            """True (and counted) when `operation` has had its N requests in the last second."""
            limit = limits.get(operation)
            if not limit:
                return False
            per_second, times = limit
            now = time.monotonic()
            with lock:
                while times and times[0] <= now - 1:
                    times.pop(0)
                if len(times) >= per_second:
                    stats["rate_limited"] += 1
                    return True
                times.append(now)
                return False

        def answer(self, status, data, ctype, extra=None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_one

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        print("STATS " + json.dumps(stats), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
