"""Settings: environment variables over ``$CRISTAL_HOME/config.toml`` over defaults.

Environment variables (``CRISTAL_HOME``, ``CRISTAL_DATABASE_URL``,
``CRISTAL_LLM_BASE_URL``, ``CRISTAL_LLM_API_KEY`` or ``OPENAI_API_KEY``,
``CRISTAL_LLM_MODEL``, ...) win over the TOML file, which wins over defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from cristal.errors import ConfigError

CONFIG_FILE_NAME = "config.toml"


def home_dir() -> Path:
    """The workspace folder: ``$CRISTAL_HOME`` or ``~/.cristal``."""
    raw = os.environ.get("CRISTAL_HOME") or "~/.cristal"
    return Path(raw).expanduser().resolve()


class LLMPrice(BaseSettings):
    """US dollars per million tokens for one model (or model-name prefix)."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``config.toml`` from the home folder, with one-line errors."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            raw = self.path.read_bytes()
            return tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{self.path}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.path}: invalid TOML ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read ({exc.strerror})") from None


class Settings(BaseSettings):
    """Validated settings for one process."""

    model_config = SettingsConfigDict(env_prefix="CRISTAL_", extra="forbid", populate_by_name=True)

    home: Path = Field(default_factory=home_dir)
    database_url: str | None = None
    llm_base_url: str | None = None
    llm_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("CRISTAL_LLM_API_KEY", "OPENAI_API_KEY", "llm_api_key")
    )
    llm_model: str | None = None
    llm_embedding_model: str | None = None
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    # The time an MCP server has to answer (connect, list its tools, run one tool) when an agent calls it or an
    # admin lists its tools; a server that takes longer is a tool error, never a hung conversation.
    mcp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Live agent turns (`cristal chat`, streamed REST and OpenAI-compatible answers) ask the model to stream its
    # tokens; off for an endpoint that cannot stream (tool calls are then still shown as they happen).
    agent_stream_tokens: bool = True
    prices: dict[str, LLMPrice] = Field(default_factory=dict)
    # Workflow ``http`` steps refuse loopback, link-local, private, multicast and unspecified
    # addresses unless this is set: workflow files come from any member, and those addresses
    # reach cloud metadata and internal services (SSRF).
    workflow_http_allow_private: bool = False
    # What one document may cost at ingestion. A small file can inflate to gigabytes (a DOCX is
    # a zip: 0.95 MB became 416 MB of XML and 400,008 chunks); a document over a limit is
    # skipped whole, and the sync says why. The checks run while inflating and parsing.
    knowledge_max_document_chars: int = Field(default=5_000_000, ge=1)
    knowledge_max_document_chunks: int = Field(default=20_000, ge=1)
    knowledge_max_unzipped_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # Files attached to a conversation (``agents.attachments``): at most this many bytes each, their text cut at
    # ``attachment_max_chars`` (the model reads all of a conversation's attachments in every turn), at most
    # ``attachment_max_count`` per conversation.
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    attachment_max_chars: int = Field(default=100_000, ge=1)
    attachment_max_count: int = Field(default=10, ge=1)

    # Modules whose functions workflow ``python`` steps may call (a module and its submodules):
    # none unless the installation lists them. Workflow files come from any member, and a
    # function that writes files or opens sockets would run with the worker's rights.
    # ``CRISTAL_WORKFLOW_PYTHON_MODULES=pkg.a,pkg.b`` or ``workflow_python_modules = ["pkg.a"]``.
    workflow_python_modules: Annotated[tuple[str, ...], NoDecode] = ()

    # What agents may use, per organization slug ("*": every organization without an entry of its own).
    # ``agent_models``: model names an agent file may name besides the organization's own chat model;
    # ``agent_tools``: the tool kinds agents may have (no entry: every kind). Checked when an agent is
    # created, edited or published and at every turn. ``agent_models = {"acme" = ["small", "large"]}``.
    agent_models: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    agent_tools: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # How long an agent's run_workflow/operate tool waits for the run it started to finish or to stop
    # at an approval before it answers with the run's status as it is (queued, running).
    agent_run_wait_seconds: float = Field(default=5.0, ge=0, le=600)
    # How often `cristal worker` deletes conversations older than their organization's retention.
    conversation_purge_interval_seconds: float = Field(default=3600.0, gt=0)

    # The durable runtime (``cristal.durable``). A worker claims at most ``--concurrency`` runs per
    # poll of the queue, so the poll interval bounds its throughput for short runs.
    worker_poll_seconds: float = Field(default=0.2, gt=0)
    # A decision wakes a waiting run at once; these only bound the delay when that message is lost
    # (workflow approvals) or how often a waiting Operator step, browser open, re-reads its approval.
    workflow_approval_poll_seconds: float = Field(default=60.0, gt=0)
    operator_approval_poll_seconds: float = Field(default=0.5, gt=0)
    # DBOS's own logging; CRITICAL keeps the CLI's output to one line per error.
    dbos_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "CRITICAL"
    # Web sign-in (OpenID Connect). The URL people reach ``cristal serve`` at, e.g. https://cristal.example.com:
    # the redirect URI registered with the provider is this plus /auth/callback. Unset: taken from each request.
    public_url: str | None = None
    # How long a browser session lasts after sign-in; how long a started sign-in may take at the provider;
    # how long a call to the provider (discovery, keys, token exchange) may take.
    session_hours: float = Field(default=8.0, gt=0)
    signin_minutes: float = Field(default=10.0, gt=0)
    oidc_timeout_seconds: float = Field(default=10.0, gt=0)
    # The Chromium binary the Operator drives; unset: /usr/bin/chromium, else chromium on the PATH.
    chromium: str | None = None
    # Internal errors show their traceback instead of one line.
    debug: bool = False

    @field_validator("dbos_log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("workflow_python_modules", mode="before")
    @classmethod
    def _module_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            names = tuple(str(v).strip() for v in value if str(v).strip())
            for name in names:
                if not all(part.isidentifier() for part in name.split(".")):
                    raise ValueError(f"{name!r} is not a module name (use dotted names such as mypkg.checks)")
            return names
        return value

    def python_module_allowed(self, module: str) -> bool:
        """Whether workflow ``python`` steps may call functions of ``module``."""
        return any(module == p or module.startswith(p + ".") for p in self.workflow_python_modules)

    @field_validator("public_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// on loopback)")
        return value.rstrip("/") if value else value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, home_dir() / CONFIG_FILE_NAME))

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE_NAME

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'cristal.db'}"


def secret_from_env(variable: str) -> str | None:
    """The value of ``variable``, an environment variable that a setting names as holding a secret.

    Secrets (an organization's model key, ``CRISTAL_SECRET_<ORG>_<NAME>`` for
    ``operate`` steps, a source's credentials) are never stored in the database
    or in ``config.toml``: only the variable's name is, and this is the one
    place that reads such a variable. Unset or empty: ``None``.
    """
    return os.environ.get(variable) or None


def load_settings(**overrides: Any) -> Settings:
    """Settings for this process, or a ``ConfigError`` naming what is wrong."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None
