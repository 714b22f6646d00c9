"""Errors that reach people.

Every failure a user can cause (bad input, unknown names, denied access, an
unreachable database or model endpoint) is a ``CristalError`` whose message is
one readable line; the CLI prints it and exits non-zero without a traceback.
"""

from __future__ import annotations


class CristalError(Exception):
    """A failure with a one-line, human-readable message."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line, always: multi-line messages break the CLI contract.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(CristalError):
    """Settings or the settings file are invalid."""


class DatabaseError(CristalError):
    """The database cannot be reached or is not initialised."""


class NotFound(CristalError):
    """A named thing (organization, user, group, key, run) does not exist."""

    exit_code = 3


class AlreadyExists(CristalError):
    """A name that must be unique is taken."""

    exit_code = 4


class InvalidInput(CristalError):
    """Input that is malformed (an e-mail address, a slug, a file)."""

    exit_code = 2


class AccessDenied(CristalError):
    """``authorize`` refused the action."""

    exit_code = 5


class LLMError(CristalError):
    """The model endpoint is missing, failing, or answered garbage."""

    exit_code = 6


class BudgetExceeded(LLMError):
    """The organization's LLM budget is spent."""

    exit_code = 7


class Busy(CristalError):
    """The same work is under way elsewhere (a sync of the same source); try again when it has finished."""

    exit_code = 75  # EX_TEMPFAIL: a temporary condition, the command may be retried
