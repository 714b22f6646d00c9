"""Settings: environment over config.toml over defaults, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristal.config import load_settings
from cristal.errors import ConfigError


@pytest.fixture(autouse=True)
def home_is_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # tests/conftest.py has removed ambient settings; here the home is tmp_path itself.
    monkeypatch.setenv("CRISTAL_HOME", str(tmp_path))


def test_defaults_live_in_the_home(tmp_path: Path) -> None:
    cfg = load_settings()
    assert cfg.home == tmp_path.resolve()
    assert cfg.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'cristal.db'}"
    assert cfg.llm_base_url is None


def test_toml_file_then_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text(
        'llm_model = "from-file"\nllm_base_url = "http://file/v1"\n[prices."my-model"]\ninput_per_million = 1.5\noutput_per_million = 2\n'
    )
    monkeypatch.setenv("CRISTAL_LLM_MODEL", "from-env")
    cfg = load_settings()
    assert cfg.llm_model == "from-env"
    assert cfg.llm_base_url == "http://file/v1"
    assert cfg.prices["my-model"].output_per_million == 2


def test_openai_api_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load_settings().llm_api_key == "sk-test"
    monkeypatch.setenv("CRISTAL_LLM_API_KEY", "cristal-key")
    assert load_settings().llm_api_key == "cristal-key"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("llm_model = [", "invalid TOML"),
        ("llm_timeout_seconds = -1", "llm_timeout_seconds"),
        ("no_such_setting = 1", "no_such_setting"),
        ('database_url = "mysql://x"', "database_url"),
    ],
)
def test_bad_config_file_is_one_line(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "config.toml").write_text(content)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"llm_model = '\xff\xfe'")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings()


def test_runtime_settings_come_from_the_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text(
        'worker_poll_seconds = 0.5\ndbos_log_level = "warning"\nchromium = "/opt/chromium/chrome"\ndebug = true\n'
    )
    monkeypatch.setenv("CRISTAL_WORKFLOW_APPROVAL_POLL_SECONDS", "5")
    monkeypatch.setenv("CRISTAL_OPERATOR_APPROVAL_POLL_SECONDS", "0.1")
    cfg = load_settings()
    assert (cfg.worker_poll_seconds, cfg.workflow_approval_poll_seconds, cfg.operator_approval_poll_seconds) == (0.5, 5.0, 0.1)
    assert cfg.dbos_log_level == "WARNING" and cfg.chromium == "/opt/chromium/chrome" and cfg.debug is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CRISTAL_DBOS_LOG_LEVEL", "LOUD"), ("CRISTAL_WORKER_POLL_SECONDS", "0"), ("CRISTAL_DEBUG", "maybe")],
)
def test_bad_runtime_setting_is_one_line(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable.removeprefix("CRISTAL_").lower()) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_a_secret_named_by_a_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cristal.config import secret_from_env

    monkeypatch.setenv("CRISTAL_ORG_KEY_ACME", "sk-acme")
    monkeypatch.setenv("CRISTAL_ORG_KEY_EMPTY", "")
    assert secret_from_env("CRISTAL_ORG_KEY_ACME") == "sk-acme"
    assert secret_from_env("CRISTAL_ORG_KEY_EMPTY") is None and secret_from_env("CRISTAL_ORG_KEY_UNSET") is None
