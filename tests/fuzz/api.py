"""Schemathesis against the local runner's API, from the document it serves.

Two users: A, whose access token every request carries, and B, who owns a project and a
run's worth of resources A must never reach. A owns a project too, so paths with A's ids
answer 2xx. Every operation is fuzzed (positive and negative data), except DELETE /me,
which would erase A mid-run (tests/tests/integration/account.rs covers it). The checks:
no 5xx, and every status, content type, header and body as the document says. Then the
GraphQL schema the same way, as A.

usage: api.py BASE_URL [--max-examples N] [extra schemathesis arguments...]
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    # A 429 (sign-ups are limited a minute, and the test run before this one signed users
    # up) is waited out as its Retry-After says, as a client should.
    for attempt in range(6):
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        if token:
            request.add_header("authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code != 429 or attempt == 5:
                raise
            wait = int(e.headers.get("retry-after") or 10)
            print(f"fuzz: {path} is rate limited; waiting {wait} s", flush=True)
            time.sleep(wait)


def signed_up(base, name):
    email = f"{name}-{uuid.uuid4().hex[:8]}@fuzz.example.com"
    session = call(base, "POST", "/auth/signup", {"email": email, "password": "correct horse battery"})
    return session["access_token"]


def main():
    base = sys.argv[1].rstrip("/")
    rest = sys.argv[2:]
    ana = signed_up(base, "ana")
    bo = signed_up(base, "bo")
    call(base, "POST", "/projects", {"name": "Ana's project"}, ana)
    project = call(base, "POST", "/projects", {"name": "Bo's project"}, bo)
    call(base, "POST", f"/projects/{project['id']}/messages", {"text": "Where are we?"}, bo)
    print(f"fuzz: user A signed up; user B owns project {project['id']}", flush=True)
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    # Both runs: as A, every health check off, plain output, the caller's extra arguments.
    shared = ["-H", "Authorization: Bearer " + ana, "--suppress-health-check", "all", "--no-color", *rest]
    rest_api = [
        schemathesis, "run", base + "/openapi.json", "--url", base,
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance,response_headers_conformance",
        "--exclude-operation-id", "delete_me",
        *shared,
    ]
    # The dashboard's GraphQL, from docs/schema.graphql: queries of every shape, valid and
    # not, as A. A field's error must be a client's (BAD_USER_INPUT and the like: an
    # argument out of range is refused, as the schema's descriptions say), never the
    # server's, and no non-null field may answer null.
    graphql = [
        schemathesis, "run", os.path.join(ROOT, "docs", "schema.graphql"), "--url", base + "/graphql",
        "--checks", "not_a_server_error,negative_data_rejection,response_schema_conformance",
        "--mode", "all",
        *shared,
    ]
    failed = subprocess.call(rest_api)
    print("fuzz: the GraphQL schema (docs/schema.graphql) at " + base + "/graphql", flush=True)
    failed = subprocess.call(graphql) or failed
    sys.exit(failed)


if __name__ == "__main__":
    main()
