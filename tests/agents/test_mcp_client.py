"""The MCP client against real servers: the SDK test server (stdio and streamable HTTP) and mcp-server-time from PyPI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError

from cristal.actions.base import ActionError
from cristal.agents.mcp_client import McpServer, call_tool, list_tools, tool_effects
from cristal.config import Settings

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_test_server.py"))
TIMEOUT = 20.0


def stdio(*args: str, **extra: object) -> McpServer:
    return McpServer.model_validate({"name": "test", "transport": "stdio", "command": sys.executable,
                                     "args": [SERVER_SCRIPT, *args], **extra})


@pytest.fixture
def settings() -> Settings:
    return Settings()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_lists_tools_with_their_effect_classes(settings: Settings) -> None:
    tools = list_tools(stdio(), settings, effects={"echo": "read", "crash": "destructive"}, timeout=TIMEOUT)
    by_name = {t["name"]: t for t in tools}
    assert {"echo", "add", "hang", "crash"} <= set(by_name)
    assert by_name["echo"]["effect"] == "read"
    assert by_name["crash"]["effect"] == "destructive"
    assert by_name["add"]["effect"] == "write"  # nobody classified it
    assert by_name["add"]["input_schema"]["properties"].keys() == {"a", "b"}


def test_calls_a_tool_and_returns_json(settings: Settings) -> None:
    out = call_tool(stdio(), "add", {"a": 2, "b": 40}, TIMEOUT, settings=settings)
    assert out["content"] == [{"type": "text", "text": "42"}]
    assert out["structured"] == {"result": 42}


def test_server_process_is_gone_after_a_call(settings: Settings) -> None:
    pid = int(call_tool(stdio(), "pid", {}, TIMEOUT, settings=settings)["structured"]["result"])
    assert not _alive(pid)


def test_a_hanging_tool_is_a_timeout_error_and_the_server_is_stopped(settings: Settings, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with pytest.raises(ActionError) as err:
        # Long enough for the server to start and write its pid on a busy machine (its imports alone take a second).
        call_tool(stdio(), "hang_with_pid", {"path": str(pidfile)}, 6.0, settings=settings)
    assert err.value.message == "MCP server 'test' did not answer (tool 'hang_with_pid') within 6s"
    assert err.value.retriable
    assert not _alive(int(pidfile.read_text()))


def test_a_server_that_hangs_at_start_is_a_timeout_error(settings: Settings) -> None:
    server = McpServer(name="mute", transport="stdio", command=sys.executable,
                       args=["-c", "import time; time.sleep(600)"])
    with pytest.raises(ActionError, match=r"^MCP server 'mute' did not answer \(listing its tools\) within 1s$"):
        list_tools(server, settings, timeout=1.0)


def test_a_crashing_server_is_an_error_with_its_last_words(settings: Settings) -> None:
    with pytest.raises(ActionError) as err:
        call_tool(stdio(), "crash", {}, TIMEOUT, settings=settings)
    assert err.value.message.startswith("MCP server 'test' failed")
    assert "test server: crashing on purpose" in err.value.message
    assert "\n" not in err.value.message


def test_a_server_that_exits_at_once_is_an_error(settings: Settings) -> None:
    server = McpServer(name="gone", transport="stdio", command=sys.executable,
                       args=["-c", "import sys; sys.exit('no config file')"])
    with pytest.raises(ActionError, match=r"^MCP server 'gone' failed.*no config file"):
        list_tools(server, settings, timeout=TIMEOUT)


def test_garbage_on_stdout_is_an_error_before_the_timeout(settings: Settings, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ActionError) as err:
        list_tools(stdio("garbage"), settings, timeout=600)  # fails at once: the test would hang otherwise
    assert err.value.message == ("MCP server 'test' wrote a line on stdout that is not JSON-RPC: "
                                 "'hello, this is not JSON-RPC'")
    assert "Traceback" not in capfd.readouterr().err


def test_unknown_tool_and_tool_errors(settings: Settings) -> None:
    with pytest.raises(ActionError, match=r"^MCP server 'test' has no tool 'nope' \(it has: echo, add, "):
        call_tool(stdio(), "nope", {}, TIMEOUT, settings=settings)
    with pytest.raises(ActionError, match=r"^MCP tool 'add' of server 'test' failed: .*valid integer"):
        call_tool(stdio(), "add", {"a": "x", "b": 1}, TIMEOUT, settings=settings)


def test_a_missing_command_is_an_error(settings: Settings) -> None:
    server = McpServer(name="nocmd", transport="stdio", command="/nonexistent/mcp-server")
    with pytest.raises(ActionError, match=r"^MCP server 'nocmd' could not start: command not found"):
        list_tools(server, settings, timeout=TIMEOUT)


def test_the_server_sees_only_declared_variables(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISTAL_DATABASE_URL", "postgresql://cristal:secret@db/cristal")
    monkeypatch.setenv("CRISTAL_ORG_KEY_TICKETS", "tok-123")
    server = stdio(env={"TICKETS_TOKEN": "CRISTAL_ORG_KEY_TICKETS"})

    def env(name: str) -> str:
        return str(call_tool(server, "show_env", {"name": name}, TIMEOUT, settings=settings)["structured"]["result"])

    assert env("TICKETS_TOKEN") == "tok-123"
    assert env("CRISTAL_DATABASE_URL") == "<unset>"
    assert env("CRISTAL_ORG_KEY_TICKETS") == "<unset>"


def test_an_unset_credential_is_an_error(settings: Settings) -> None:
    with pytest.raises(ActionError, match=r"takes a credential from \$CRISTAL_ORG_KEY_ABSENT, which is not set"):
        list_tools(stdio(env={"TOKEN": "CRISTAL_ORG_KEY_ABSENT"}), settings, timeout=TIMEOUT)


def test_descriptions_name_variables_not_secrets() -> None:
    with pytest.raises(ValidationError, match="must start with CRISTAL_ORG_KEY_"):
        stdio(env={"DB": "CRISTAL_DATABASE_URL"})
    with pytest.raises(ValidationError, match="not a url or headers"):
        McpServer(name="x", transport="stdio", command="x", url="http://example.com/mcp")
    with pytest.raises(ValidationError, match="has a url starting with"):
        McpServer(name="x", transport="http", url="file:///etc/passwd")
    with pytest.raises(ValidationError, match="invalid MCP server name"):
        McpServer(name="Bad Name", transport="stdio", command="x")


def test_effect_classes_default_to_write() -> None:
    assert tool_effects(["a", "b", "c"], {"a": "read", "c": "destructive"}) == {
        "a": "read", "b": "write", "c": "destructive"}
    assert tool_effects(["a"]) == {"a": "write"}
    with pytest.raises(ActionError, match="invalid effect 'harmless'"):
        tool_effects(["a"], {"a": "harmless"})


# ---------------------------------------------------------------------------
# mcp-server-time, an existing server from PyPI


def test_mcp_server_time_from_pypi(settings: Settings) -> None:
    server = McpServer(name="time", transport="stdio", command=sys.executable,
                       args=["-m", "mcp_server_time", "--local-timezone", "UTC"])
    names = {t["name"] for t in list_tools(server, settings, timeout=TIMEOUT)}
    assert {"get_current_time", "convert_time"} <= names
    out = call_tool(server, "convert_time", {"source_timezone": "Europe/Berlin", "time": "12:00",
                                             "target_timezone": "Asia/Tokyo"}, TIMEOUT, settings=settings)
    assert out["structured"]["target"]["timezone"] == "Asia/Tokyo"
    assert out["structured"]["target"]["datetime"].split("T")[1].startswith(("19:00", "20:00"))  # DST or not


# ---------------------------------------------------------------------------
# Streamable HTTP on loopback


@contextmanager
def serve_http(log_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The SDK test server on streamable HTTP on loopback (``env`` added to its environment): its ``/mcp`` URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, SERVER_SCRIPT, "http", str(port)], stdout=log, stderr=log,
                            env={**os.environ, **(env or {})})
    try:
        for _ in range(300):  # until it listens (a polled condition, not a fixed wait)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    with serve_http(tmp_path / "http-server.log") as url:
        yield url


def test_streamable_http_through_the_network_policy(http_server: str, settings: Settings) -> None:
    server = McpServer(name="web", transport="http", url=http_server)
    with pytest.raises(ActionError, match=r"^MCP server 'web': .*127.0.0.1.*CRISTAL_WORKFLOW_HTTP_ALLOW_PRIVATE"):
        list_tools(server, settings, timeout=TIMEOUT)
    with pytest.raises(ActionError, match=r"^MCP server 'web': .*not in the organization's allowed domains"):
        list_tools(server, settings, timeout=TIMEOUT, org_domains=("example.com",))
    # The organization's allow-list names the host: allowed.
    out = call_tool(server, "echo", {"text": "über"}, TIMEOUT, settings=settings, org_domains=("127.0.0.1",))
    assert out["structured"] == {"result": "über"}
    allowed = Settings(workflow_http_allow_private=True)
    assert "add" in {t["name"] for t in list_tools(server, allowed, timeout=TIMEOUT)}
    with pytest.raises(ActionError, match=r"^MCP server 'web' did not answer \(tool 'hang'\) within 1s$"):
        call_tool(server, "hang", {}, 1.0, settings=allowed)


def test_an_http_server_nobody_listens_on(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = McpServer(name="down", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    with pytest.raises(ActionError, match=r"^MCP server 'down' failed"):
        list_tools(server, Settings(workflow_http_allow_private=True), timeout=TIMEOUT)


def test_http_connections_dial_only_the_checked_addresses(http_server: str) -> None:
    import anyio
    import httpcore2

    from cristal.agents.mcp_client import _Pinned
    from cristal.net.policy import Target

    port = int(http_server.rsplit(":", 1)[1].split("/")[0])
    # A name that no DNS answers: the connection reaches the server only through the checked address.
    pinned = _Pinned(Target("http", "mcp.invalid", port, ["127.0.0.1"]))

    async def main() -> None:
        stream = await pinned.connect_tcp("mcp.invalid", port, timeout=5)
        await stream.aclose()
        with pytest.raises(httpcore2.ConnectError, match="not the checked address"):
            await pinned.connect_tcp("elsewhere.invalid", port, timeout=5)
        with pytest.raises(httpcore2.ConnectError, match="not the checked address"):
            await pinned.connect_tcp("mcp.invalid", port + 1 if port < 65535 else port - 1, timeout=5)

    anyio.run(main)
