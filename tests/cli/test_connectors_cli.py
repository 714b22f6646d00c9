"""The connectors with settings files through the command line: bad settings are refused, syncs report reasons."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cristal.db import Database

from ..conftest import CliResult
from ..knowledge.connectors.site import Site

Cli = Callable[..., CliResult]


@pytest.fixture
def workspace(cli: Cli, db: Database, cli_in_process: Cli) -> Cli:
    """A workspace with organization acme, set up in this process; the tests use real processes."""
    assert cli_in_process("init").code == 0
    assert cli_in_process("org", "create", "acme").code == 0
    return cli


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


def test_web_source_from_a_settings_file(workspace: Cli, site: Site, tmp_path: Path) -> None:
    cli = workspace
    assert cli("user", "add", "hr@acme.example", "--org", "acme", "--group", "hr").code == 0
    assert cli("user", "add", "fin@acme.example", "--org", "acme", "--group", "finance").code == 0
    site.require_auth = "Bearer t0ken"
    site.html("/", "Home", "Welcome to the intranet.", ("/hr", "/loop"))
    site.html("/hr", "Salary bands", "Salary bands for senior engineers.", headers={"X-Access": "hr-staff"})
    site.html("/loop", "Loop", "never", headers={"Location": "/loop"})
    site.pages["/loop"].status = 302
    settings = tmp_path / "web.yaml"
    settings.write_text("headers_from_env:\n  Authorization: INTRANET_AUTH\nacl_header: X-Access\n"
                        "principals:\n  hr-staff: group:hr\n", encoding="utf-8")
    added = cli("source", "add", "intranet", "--org", "acme", "--kind", "web", "--uri", site.url, "--acl", "org",
                "--config", str(settings), "--json")
    assert added.code == 0, added.stderr
    assert json.loads(added.stdout)["options"]["config"]["acl_header"] == "X-Access"
    synced = cli("sync", "intranet", "--org", "acme", "--keyword-only", extra_env={"INTRANET_AUTH": "Bearer t0ken"})
    assert synced.code == 0, synced.stderr
    assert "2 added" in synced.stdout and f"skipped {site.url}/loop: redirect loop" in synced.stdout
    hr = cli("search", "salary bands", "--org", "acme", "--as", "hr@acme.example", "--mode", "keyword", "--json")
    fin = cli("search", "salary bands", "--org", "acme", "--as", "fin@acme.example", "--mode", "keyword", "--json")
    assert [h["uri"] for h in json.loads(hr.stdout)["hits"]] == [site.url + "/hr"]
    assert json.loads(fin.stdout)["hits"] == []  # not in the group the site's principal maps to


BAD_SETTINGS = [
    ("seeds: [unclosed\n", "web.yaml:2: invalid YAML"),
    ("- a list\n", "web.yaml: expected a mapping of settings, got list"),
    ("seeds: []\nmax_redirects: many\n", "web.yaml:2: web source settings: max_redirects: Input should be a valid integer"),
]


def test_bad_settings_file_exits_2_with_one_line(workspace: Cli, tmp_path: Path) -> None:
    settings = tmp_path / "web.yaml"
    for content, message in BAD_SETTINGS:
        settings.write_text(content, encoding="utf-8")
        result = workspace("source", "add", "intranet", "--org", "acme", "--kind", "web", "--uri", "http://127.0.0.1:9/",
                           "--config", str(settings))
        assert result.code == 2, content
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    files = tmp_path / "files.yaml"
    files.write_text("principals: {a: org}\n", encoding="utf-8")
    result = workspace("source", "add", "docs", "--org", "acme", "--kind", "files", "--uri", str(tmp_path), "--config", str(files))
    assert result.code == 2 and "files sources take no settings file (--config is for" in result.stderr
    assert json.loads(workspace("source", "list", "--org", "acme", "--json").stdout)["sources"] == []
