#!/usr/bin/env python3
"""Local AWS for sgwatch's tests and demo: moto server on loopback, plus one route of our own.

moto's `/moto-api/data.json` would show sent SES mail, but it answers 500 as soon as a Lambda
function exists (it asks Docker about it). So this script starts moto in-process and serves the
sent mail itself, straight from moto's SES backend:

    GET /_sgwatch/ses/messages  ->  [{"id", "source", "destinations", "subject", "text", "html",
                                      "region", "account", ...}, ...]  (oldest first per region)

moto keeps a single body per message (the HTML part when there is one, else the text part), so
SES v2 `SendEmail` requests are also noted here, by message id, to return both parts.

Prints `READY http://127.0.0.1:PORT` on stdout once it serves, then runs until SIGTERM or SIGINT
(or, with --watch-stdin, until stdin closes: the test harness holds the other end, so moto goes
away with the test process even when that is killed).
"""

import argparse
import email
import json
import logging
import os
import signal
import sys
import threading
import time
from email import policy

# This file is named moto.py, and Python puts its directory first on sys.path: without this,
# `import moto` would import this script instead of the package.
_here = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _here]

from moto.moto_server import threaded_moto_server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.cloudformation.models import CloudFormationBackend
from moto.server import ThreadedMotoServer
from moto.ses.models import Message, RawMessage, ses_backends
from moto.sesv2.responses import SESV2Response

MESSAGES_PATH = "/_sgwatch/ses/messages"

# Both body parts of each SES v2 simple message, by message id (see the module docstring).
_simple_bodies: dict[str, dict[str, str | None]] = {}


def _note_simple_bodies(send_email):
    def wrapper(self):
        result = send_email(self)
        content = json.loads(self.body).get("Content", {})
        body = content.get("Simple", {}).get("Body")
        if body is not None:
            message_id = json.loads(result)["MessageId"]
            _simple_bodies[message_id] = {
                "text": body.get("Text", {}).get("Data"),
                "html": body.get("Html", {}).get("Data"),
            }
        return result

    return wrapper


SESV2Response.send_email = _note_simple_bodies(SESV2Response.send_email)


# moto builds a stack's outputs once, from the template it had when the stack object was made,
# and a stack made by a CREATE change set starts with an empty template: after executing a change
# set, DescribeStacks would list no outputs (and stale ones after an UPDATE). AWS re-evaluates them;
# so does this, so that `sgwatch install` (which deploys through change sets) reads its outputs.
def _refresh_outputs_after(execute_change_set):
    def wrapper(self, change_set_name, stack_name=None):
        execute_change_set(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values()
             if c.change_set_name == change_set_name
             and stack_name in (None, c.stack_name, c.stack_id)),
            None,
        )
        if change_set is not None:
            stack = self.stacks[change_set.stack_id]
            stack._parse_template()
            stack.description = stack.template_dict.get("Description")
            stack.output_map = stack._create_output_map()
            # Evaluated now, while this thread holds the stack's finished resources: moto creates
            # a resource it is asked about and has not made yet, so outputs evaluated lazily by a
            # concurrent DescribeStacks could make a second copy.
            stack.outputs

    return wrapper


CloudFormationBackend.execute_change_set = _refresh_outputs_after(
    CloudFormationBackend.execute_change_set)


# Bridge (opt-in, for benchmarks): moto creates a stack within the ExecuteChangeSet call, AWS takes
# seconds to minutes, during which DescribeStacks reports CREATE_IN_PROGRESS. With
# SGWATCH_MOTO_CREATE_SECONDS=N, a stack created by a change set reads as CREATE_IN_PROGRESS for N
# seconds after the call (its resources already exist), so waiting on CloudFormation costs what it
# costs against AWS. Unset or 0: moto's own behaviour.
CREATE_SECONDS = float(os.environ.get("SGWATCH_MOTO_CREATE_SECONDS") or 0)


def _hold_created_stacks(execute_change_set):
    def wrapper(self, change_set_name, stack_name=None):
        execute_change_set(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            if stack.status == "CREATE_COMPLETE" and not hasattr(stack, "_sgwatch_created_at"):
                stack._sgwatch_created_at = time.monotonic()
                stack.status = "CREATE_IN_PROGRESS"

    return wrapper


def _release_held_stacks(describe_stacks):
    def wrapper(self, name_or_stack_id):
        for stack in self.stacks.values():
            held_since = getattr(stack, "_sgwatch_created_at", None)
            if (stack.status == "CREATE_IN_PROGRESS" and held_since is not None
                    and time.monotonic() - held_since >= CREATE_SECONDS):
                stack.status = "CREATE_COMPLETE"
        return describe_stacks(self, name_or_stack_id)

    return wrapper


if CREATE_SECONDS > 0:
    CloudFormationBackend.execute_change_set = _hold_created_stacks(
        CloudFormationBackend.execute_change_set)
    CloudFormationBackend.describe_stacks = _release_held_stacks(
        CloudFormationBackend.describe_stacks)


def _flatten(destinations) -> list[str]:
    if isinstance(destinations, list):  # raw messages keep a flat list
        return list(destinations)
    return [
        address
        for key in ("ToAddresses", "CcAddresses", "BccAddresses")
        for address in destinations.get(key, [])
    ]


def _raw_parts(raw_data: str) -> dict[str, str | None]:
    parsed = email.message_from_string(raw_data, policy=policy.default)
    parts = {"subject": parsed.get("Subject"), "text": None, "html": None}
    for kind in ("plain", "html"):
        part = parsed.get_body(preferencelist=(kind,))
        if part is not None and part.get_content_subtype() == kind:
            parts["text" if kind == "plain" else "html"] = part.get_content()
    return parts


def sent_messages() -> list[dict]:
    """Every message moto's SES backends (v1, which SES v2 stores into) have accepted."""
    out = []
    # dict.items, not the BackendDict's own accessors, which create backends as they are asked.
    for account, by_region in list(dict.items(ses_backends)):
        for region, backend in list(dict.items(by_region)):
            for message in list(backend.sent_messages):
                entry = {"id": message.id, "source": message.source, "region": region,
                         "account": account}
                if isinstance(message, Message):
                    # SES v1 SendEmail is not noted: which part moto kept is unknown there.
                    bodies = _simple_bodies.get(message.id, {"text": None, "html": None})
                    entry.update(subject=message.subject, body=message.body, **bodies)
                elif isinstance(message, RawMessage):
                    entry.update(_raw_parts(message.raw_data))
                else:  # templated mail: no rendered body in moto
                    entry.update(subject=None, text=None, html=None,
                                 template=getattr(message, "template", None))
                entry["destinations"] = _flatten(message.destinations)
                out.append(entry)
    return out


class Dispatcher(DomainDispatcherApplication):
    """moto's WSGI dispatcher, answering our own route before moto sees the request."""

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == MESSAGES_PATH:
            if environ.get("REQUEST_METHOD") != "GET":
                start_response("405 Method Not Allowed", [("Content-Length", "0")])
                return [b""]
            body = json.dumps(sent_messages()).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return super().__call__(environ, start_response)


# ThreadedMotoServer builds its app from this module-level name; give it ours.
threaded_moto_server.DomainDispatcherApplication = Dispatcher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    # Port 0: the OS picks a free port at bind time, so there is no race with other servers.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.watch_stdin:
        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            stop.set()

        threading.Thread(target=watch, daemon=True).start()

    print(f"READY http://{host}:{port}", flush=True)
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
