"""``cristal serve`` as a user runs it: a subprocess that serves until it is told to stop."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx2 as httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_serves_and_stops_on_sigterm(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    assert cli("init").code == 0
    assert cli("org", "create", "acme").code == 0
    assert cli("user", "add", "ann@acme.example", "--org", "acme", "--group", "finance").code == 0
    made = cli("apikey", "create", "ann@acme.example", "--org", "acme", "--as", "ann@acme.example")
    assert made.code == 0, made.stderr
    key = re.search(r"cri_[0-9a-f]+_[A-Za-z0-9_-]+", made.stdout + made.stderr).group(0)  # type: ignore[union-attr]  # the command prints the key
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cristal", "serve", "--port", str(port)], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "cristal serve did not come up"
            time.sleep(0.1)
        me = httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and me.json()["email"] == "ann@acme.example"
        assert httpx.get(base + "/api/v1/me").status_code == 401
        assert "Sign in" in httpx.get(base + "/").text
        # The same port again: a one-line error, no traceback.
        again = cli("serve", "--port", str(port))
        assert again.code == 2 and again.stderr.startswith("error: cannot listen on 127.0.0.1:") and "Traceback" not in again.stderr
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in err and "Traceback" not in err


def test_serve_refuses_a_bad_port(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    assert cli("init").code == 0
    r = cli("serve", "--port", "70000")
    assert r.code == 2 and r.stderr.strip() == "error: --port must be between 1 and 65535, not 70000"
