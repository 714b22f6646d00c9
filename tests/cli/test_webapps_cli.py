"""``cristal webapps`` serves the sample apps on loopback until interrupted."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request


def test_webapps_serve_and_stop(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    proc = subprocess.Popen([sys.executable, "-m", "cristal", "webapps", "--port", "0"], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # type: ignore[union-attr]  # started with stderr=PIPE
        url = re.search(r"http://127\.0\.0\.1:\d+/expenses/", first)
        assert url, first
        with urllib.request.urlopen(url.group().replace("/expenses/", "/login"), timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200 and "Sign in" in page
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_webapps_bad_port(cli) -> None:  # type: ignore[no-untyped-def]  # pytest fixtures are untyped
    result = cli("webapps", "--port", "70000")
    assert result.code == 2 and "invalid port" in result.stderr
