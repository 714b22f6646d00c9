"""``make fuzz``: schemathesis against ``/api/v1/openapi.json`` of a real ``cristal serve``, with a member's API key.

It builds a throwaway workspace in a temporary folder (SQLite): two
organizations, each with an admin and a member, and a few documents synced
for search (``cristal.testing.fuzzing``); a scripted model endpoint on
loopback; starts ``cristal serve`` on a free loopback port as its own
process; runs ``schemathesis run`` against the served OpenAPI document as
acme's member; stops the server and exits with schemathesis's status (0: no
check failed). Nothing leaves the machine, and workflow runs started by the
fuzzer are only queued (no worker runs them).

    python scripts/fuzz.py [--max-examples N] [--seed S] [--checks LIST]

The checks default to the ones the server must pass: no 5xx, and statuses,
content types, headers and bodies as documented. The suite runs a smaller version of the same (tests/server/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

from cristal.testing.fuzzing import CHECKS, MODEL, fuzz_model, fuzz_workspace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100, help="test cases per operation (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, to repeat a run")
    parser.add_argument("--checks", default=",".join(CHECKS), help="schemathesis checks (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cristal-fuzz-") as tmp, fuzz_model() as model:
        root = Path(tmp)
        url, key = fuzz_workspace(root)
        port = free_port()
        env = {**os.environ, "CRISTAL_HOME": str(root / "home"), "CRISTAL_DATABASE_URL": url,
               "CRISTAL_LLM_BASE_URL": model.base_url, "CRISTAL_LLM_MODEL": MODEL, "CRISTAL_LLM_API_KEY": "fuzz"}
        log = (root / "server.log").open("w")
        server = subprocess.Popen([sys.executable, "-m", "cristal", "serve", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print((root / "server.log").read_text(), file=sys.stderr)
                    print("cristal serve did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            command = [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/api/v1/openapi.json",
                       "--header", f"Authorization: Bearer {key}", "--checks", args.checks,
                       "--max-examples", str(args.max_examples), "--workers", "1", "--request-timeout", "150",
                       "--generation-database", "none", "--no-color"]
            if args.seed is not None:
                command += ["--seed", str(args.seed)]
            code = subprocess.call(command)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
        errors = [line for line in (root / "server.log").read_text().splitlines() if "failed (request id" in line]
        if errors:
            print("server errors in the log:\n" + "\n".join(errors), file=sys.stderr)
            return code or 1
        return code


if __name__ == "__main__":
    sys.exit(main())
