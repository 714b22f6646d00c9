"""Which model endpoint an organization uses: base URL, API key, models.

An organization's own settings (``cristal org llm ...``) win over the
process settings (``CRISTAL_LLM_*``). The key of an organization is never in
the database: ``Organization.llm_api_key_env`` names the environment variable
that holds it. The installation's own key is never sent to a base URL an
organization chose: an organization admin could otherwise point the URL at a
server of theirs and collect the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cristal.config import Settings, secret_from_env
from cristal.db.schema import Organization
from cristal.errors import LLMError

Kind = Literal["chat", "embedding"]

# Local servers (Ollama, vLLM, llama.cpp) accept any key, but the ``openai``
# client refuses to send none; this one marks "no key configured".
KEYLESS = "not-configured"

NO_ENDPOINT = (
    "no LLM endpoint configured: set CRISTAL_LLM_BASE_URL (and CRISTAL_LLM_API_KEY or OPENAI_API_KEY, "
    "CRISTAL_LLM_MODEL) or `cristal org llm ...`"
)


@dataclass(frozen=True)
class Endpoint:
    """The resolved settings; unset values stay ``None`` until a call needs them."""

    base_url: str | None
    api_key: str | None
    chat_model: str | None
    embedding_model: str | None
    org_slug: str | None = None
    api_key_env: str | None = None  # the organization's key variable, for messages

    def model_for(self, kind: Kind, override: str | None = None) -> str | None:
        return override or (self.chat_model if kind == "chat" else self.embedding_model)

    def require(self, kind: Kind, override: str | None = None) -> tuple[str, str, str]:
        """``(base_url, api_key, model)`` for a call, or ``LLMError`` saying what to set."""
        if not self.base_url:
            raise LLMError(NO_ENDPOINT)
        if self.api_key_env and not self.api_key:
            raise LLMError(
                f"organization {self.org_slug!r} takes its LLM key from ${self.api_key_env}, which is not set"
            )
        model = self.model_for(kind, override)
        if not model:
            if kind == "chat":
                raise LLMError("no LLM model configured: set CRISTAL_LLM_MODEL or `cristal org llm ... --model NAME`")
            raise LLMError("no embedding model configured: set CRISTAL_LLM_EMBEDDING_MODEL")
        return self.base_url, self.api_key or KEYLESS, model


def resolve_endpoint(settings: Settings, org: Organization | None) -> Endpoint:
    """The endpoint ``org`` uses (``None``: the process settings alone)."""
    key_env = org.llm_api_key_env if org is not None else None
    own_url = org.llm_base_url if org is not None else None
    if key_env:
        api_key = secret_from_env(key_env)
    elif own_url and own_url.rstrip("/") != (settings.llm_base_url or "").rstrip("/"):
        api_key = None
    else:
        api_key = settings.llm_api_key
    return Endpoint(
        base_url=own_url or settings.llm_base_url,
        api_key=api_key,
        chat_model=(org.llm_model if org is not None else None) or settings.llm_model,
        embedding_model=settings.llm_embedding_model,
        org_slug=org.slug if org is not None else None,
        api_key_env=key_env,
    )


def embedding_endpoint(settings: Settings, org: Organization | None, base_url: str, api_key_env: str | None, model: str) -> Endpoint:
    """The endpoint of an embedding index: its own URL and model, with the same rules for the key.

    The key comes from the index's own variable if it names one; else the installation's key, but
    only to the installation's own base URL (never to a URL an organization chose).
    """
    if api_key_env:
        api_key = secret_from_env(api_key_env)
    elif base_url.rstrip("/") == (settings.llm_base_url or "").rstrip("/"):
        api_key = settings.llm_api_key
    else:
        api_key = KEYLESS
    return Endpoint(base_url=base_url, api_key=api_key, chat_model=None, embedding_model=model,
                    org_slug=org.slug if org is not None else None, api_key_env=api_key_env)
