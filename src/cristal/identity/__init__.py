"""Identity and authorization: organizations, users, groups, roles, API keys, ``authorize``."""

from cristal.identity.authorize import POLICY, Decision, authorize, decide, require
from cristal.identity.directory import resolve_principal
from cristal.identity.principal import Principal
from cristal.identity.resource import Resource

__all__ = ["POLICY", "Decision", "Principal", "Resource", "authorize", "decide", "require", "resolve_principal"]
