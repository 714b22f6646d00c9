"""Each organization's OpenID Connect provider: set by its admins, read when someone signs in to the web app.

An organization has at most one provider: the issuer (its discovery document
is ``ISSUER/.well-known/openid-configuration``), the client id Cristal is
registered under there, the *name* of the environment variable holding the
client secret (``CRISTAL_ORG_KEY_...``, as for model keys: no secret is stored)
and the id token claim that lists the person's groups. The sign-in itself is
``identity/signin.py``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from cristal.db.schema import OidcProvider, Organization, utcnow
from cristal.errors import InvalidInput, NotFound
from cristal.identity.authorize import require
from cristal.identity.directory import in_org, org_by_slug
from cristal.identity.orgs import check_key_env
from cristal.identity.principal import Principal
from cristal.identity.sessions import end_org_sessions

_CLAIM = re.compile(r"^[A-Za-z0-9_:./-]{1,100}$")


@dataclass(frozen=True)
class ProviderInfo:
    org: str
    issuer: str
    client_id: str
    client_secret_env: str | None
    groups_claim: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _info(org: Organization, row: OidcProvider) -> ProviderInfo:
    return ProviderInfo(org.slug, row.issuer, row.client_id, row.client_secret_env, row.groups_claim)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def protected_url(url: str) -> bool:
    """Whether ``url`` is ``https://``, or ``http://`` on loopback (a provider on the same machine, as in the tests):
    the provider's keys and tokens must not be readable or changeable on the way."""
    parts = urlsplit(url or "")
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))


def check_issuer(issuer: str) -> str:
    """The issuer URL as given (it is compared verbatim with the tokens' ``iss``), or ``InvalidInput``.

    HTTPS, except on loopback (``protected_url``).
    """
    parts = urlsplit(issuer or "")
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise InvalidInput(f"invalid issuer {issuer!r}: give the provider's URL, e.g. https://login.example.com/realms/acme")
    if not protected_url(issuer):
        raise InvalidInput(f"invalid issuer {issuer!r}: the provider must be reached over https://")
    return issuer


def configure_oidc(
    session: Session,
    actor: Principal,
    slug: str,
    *,
    issuer: str,
    client_id: str,
    secret_env: str | None = None,
    groups_claim: str | None = None,
) -> ProviderInfo:
    """Set (or replace) the organization's provider; an org admin's change, audited as ``org.update``."""
    org = org_by_slug(session, slug)
    changes = {"oidc_issuer": issuer, "oidc_client_id": client_id, "oidc_secret_env": secret_env,
               "oidc_groups_claim": groups_claim}
    require(session, actor, "org.update", in_org(org, "org", slug), details=changes)
    check_issuer(issuer)
    client_id = (client_id or "").strip()
    if not client_id or len(client_id) > 200:
        raise InvalidInput("invalid client id: give the id the provider registered Cristal under (1-200 characters)")
    if secret_env is not None:
        check_key_env(secret_env)
    if groups_claim is not None and not _CLAIM.match(groups_claim):
        raise InvalidInput(f"invalid groups claim {groups_claim!r}: use letters, digits and _ : . / -")
    row = session.get(OidcProvider, org.id)
    if row is None:
        row = OidcProvider(org_id=org.id)
        session.add(row)
    elif (row.issuer, row.client_id) != (issuer, client_id):
        end_org_sessions(session, org.id)  # sessions of the old provider do not outlive the change
    row.issuer, row.client_id, row.client_secret_env, row.groups_claim = issuer, client_id, secret_env, groups_claim
    row.updated_at = utcnow()
    session.flush()
    return _info(org, row)


def show_oidc(session: Session, actor: Principal, slug: str) -> ProviderInfo:
    """The organization's provider (``NotFound`` when it has none)."""
    org = org_by_slug(session, slug)
    require(session, actor, "org.oidc.read", in_org(org, "org", slug))
    row = session.get(OidcProvider, org.id)
    if row is None:
        raise NotFound(f"organization {slug!r} has no sign-in provider: set one with `cristal org oidc {slug} --issuer ...`")
    return _info(org, row)


def remove_oidc(session: Session, actor: Principal, slug: str) -> None:
    """Remove the provider: nobody signs in through it any more, and the sessions it made end now."""
    org = org_by_slug(session, slug)
    require(session, actor, "org.update", in_org(org, "org", slug), details={"oidc": "removed"})
    row = session.get(OidcProvider, org.id)
    if row is None:
        raise NotFound(f"organization {slug!r} has no sign-in provider")
    session.delete(row)
    end_org_sessions(session, org.id)
    session.flush()


def provider_of(session: Session, org: Organization) -> OidcProvider | None:
    """The provider people of ``org`` sign in with (read before anyone is signed in, so not authorized)."""
    return session.get(OidcProvider, org.id)
