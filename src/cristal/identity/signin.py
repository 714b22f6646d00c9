"""Signing in to the web app with the organization's OpenID Connect provider (authorization code flow with PKCE).

``begin`` stores a sign-in under way (the hashes of its ``state`` and of a
random value for the browser's sign-in cookie, its nonce and PKCE verifier) and
returns the provider's authorization URL. ``finish`` takes the provider's
answer: the state must name a stored sign-in (each works once and expires; a
used one is kept until then, so a replay is recorded as its organization's), the
browser must hold its cookie, the code is exchanged with the verifier (and the
client secret, when the organization has one), and the id token is checked:
signature against the provider's published keys (JWKS; asymmetric algorithms
only), issuer, audience (this organization's client id), expiry, issue time
and nonce (Authlib's ``CodeIDToken`` rules over joserfc). Only then is the
person found, or created as a member of the organization the provider belongs
to, their groups set from the configured claim, and a session made.

A sign-in is tied to one organization from its first step: the provider that
is asked, the client id the token must be for and the organization the person
lands in all come from the stored sign-in, never from the provider's answer,
so a token another organization's provider issued cannot sign anyone in here.
Every refusal is a ``SignInRefused`` naming the organization it concerns (the
server records it in that organization's audit trail).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cristal.config import Settings, secret_from_env
from cristal.db import Database
from cristal.db.schema import OidcProvider, Organization, User, WebSignIn, utcnow
from cristal.errors import AccessDenied, InvalidInput
from cristal.identity.directory import org_by_slug, resolve_principal
from cristal.identity.oidc import protected_url, provider_of
from cristal.identity.principal import Principal
from cristal.identity.sessions import create_session
from cristal.identity.users import add_user, sync_groups
from cristal.identity.validation import check_email, check_group

# Who creates people and sets their groups at sign-in: the installation, on the organization admin's standing
# instruction (the provider they configured). Audited under this name.
PROVISIONER = Principal.installation("oidc-sign-in")
SCOPES = "openid email profile"
# Asymmetric only: an HMAC-signed token would be checked with the client secret, which the provider and Cristal
# share, and "none" is no signature at all.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
CLOCK_LEEWAY_SECONDS = 30
MAX_DOCUMENT_BYTES = 1024 * 1024


class SignInRefused(AccessDenied):
    """A sign-in that does not go through, with the organization it was for when that is known (for the audit trail)."""

    def __init__(self, message: str, *, org_id: int | None = None, org_slug: str | None = None) -> None:
        super().__init__(message)
        self.org_id, self.org_slug = org_id, org_slug


class ProviderUnavailable(SignInRefused):
    """The provider could not be reached or answered something that is not OpenID Connect."""


@dataclass(frozen=True)
class SignInStart:
    url: str  # where to send the browser
    binding: str  # the value of the browser's sign-in cookie


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    token: str  # the session cookie's value
    expires_at: datetime


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ProviderDocuments:
    """Providers' discovery documents and keys (JWKS), kept for ``ttl_seconds``; one per server (``ServerState``).

    A sign-in then costs the provider one request (the code's redemption), and
    anonymous ``/auth/login`` requests cannot make Cristal send it one each.
    Keys that no longer verify a token are fetched again once (the provider
    rotated them).
    """

    def __init__(self, ttl_seconds: float = 300.0) -> None:
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._docs: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, client: httpx.Client, url: str, org: Organization, what: str, *, fresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            kept = self._docs.get(url)
        if kept is not None and not fresh and kept[0] > now:
            return kept[1]
        doc = _get_json(client, url, org, what)
        with self._lock:
            self._docs[url] = (now + self.ttl_seconds, doc)
        return doc

    def kept(self, url: str) -> bool:
        """Whether ``url``'s document is kept (so ``get`` would not fetch it)."""
        with self._lock:
            kept = self._docs.get(url)
        return kept is not None and kept[0] > time.monotonic()


def _get_json(client: httpx.Client, url: str, org: Organization, what: str) -> dict[str, Any]:
    try:
        response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"the sign-in provider could not be reached for its {what} ({type(exc).__name__})",
                                  org_id=org.id, org_slug=org.slug) from None
    return _document(response, org, what)


def _document(response: httpx.Response, org: Organization, what: str) -> dict[str, Any]:
    if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
        raise ProviderUnavailable(f"the sign-in provider answered HTTP {response.status_code} for its {what}",
                                  org_id=org.id, org_slug=org.slug)
    try:
        doc = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise ProviderUnavailable(f"the sign-in provider's {what} is not a JSON object", org_id=org.id, org_slug=org.slug)
    return doc


def _discover(client: httpx.Client, documents: ProviderDocuments, provider: OidcProvider,
              org: Organization) -> dict[str, Any]:
    """The provider's metadata; its ``issuer`` must be the configured one exactly (OpenID Connect Discovery 4.3)."""
    doc = documents.get(client, provider.issuer.rstrip("/") + "/.well-known/openid-configuration", org,
                        "discovery document")
    if doc.get("issuer") != provider.issuer:
        raise ProviderUnavailable(f"the sign-in provider's discovery document names issuer {str(doc.get('issuer'))[:200]!r}, "
                                  f"not the configured {provider.issuer!r}", org_id=org.id, org_slug=org.slug)
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str) or not protected_url(doc[key]):
            raise ProviderUnavailable(f"the sign-in provider's discovery document has no https:// {key}", org_id=org.id,
                                      org_slug=org.slug)
    return doc


def _provider(session: Session, org: Organization) -> OidcProvider:
    provider = provider_of(session, org)
    if provider is None:
        raise SignInRefused(f"organization {org.slug!r} has no sign-in provider: sign in with an API key", org_id=org.id,
                            org_slug=org.slug)
    return provider


def begin(db: Database, settings: Settings, org_slug: str, redirect_uri: str,
          documents: ProviderDocuments | None = None) -> SignInStart:
    """Start signing in to ``org_slug``: the provider's authorization URL and the browser's sign-in cookie value."""
    documents = documents or ProviderDocuments()
    state, nonce, binding = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters, within PKCE's 43-128
    with db.session() as session:
        org = org_by_slug(session, org_slug)
        provider = _provider(session, org)
        session.expunge(org)
        session.expunge(provider)
    with httpx.Client(timeout=settings.oidc_timeout_seconds, follow_redirects=False) as client:
        meta = _discover(client, documents, provider, org)  # outside a transaction: the provider may be slow
    with db.session() as session:
        now = utcnow()
        session.execute(delete(WebSignIn).where(WebSignIn.expires_at < now))  # the abandoned ones
        session.add(WebSignIn(state_hash=_hash(state), binding_hash=_hash(binding), org_id=org.id, nonce=nonce,
                              code_verifier=verifier, redirect_uri=redirect_uri, created_at=now,
                              expires_at=now + timedelta(minutes=settings.signin_minutes)))
        url = add_params_to_uri(meta["authorization_endpoint"], [
            ("response_type", "code"), ("client_id", provider.client_id), ("redirect_uri", redirect_uri),
            ("scope", SCOPES), ("state", state), ("nonce", nonce),
            ("code_challenge", create_s256_code_challenge(verifier)), ("code_challenge_method", "S256"),
        ])
    return SignInStart(url=url, binding=binding)


def _take_sign_in(db: Database, state: str, binding: str | None) -> tuple[WebSignIn, Organization]:
    """The stored sign-in ``state`` names, marked used in its own transaction so that it works exactly once."""
    if not state:
        raise SignInRefused("the provider's answer has no state: start signing in again")
    with db.session() as session:
        row = session.scalar(select(WebSignIn).where(WebSignIn.state_hash == _hash(state)))
        if row is None:
            raise SignInRefused("unknown or already used sign-in state: start signing in again")
        org = session.get(Organization, row.org_id)
        assert org is not None  # sign-ins cascade with their organization
        session.expunge(row)
        session.expunge(org)
        # A conditional update, so that of two requests with the same answer only one gets through.
        taken = session.execute(update(WebSignIn).where(WebSignIn.state_hash == row.state_hash, WebSignIn.used_at.is_(None))
                                .values(used_at=utcnow()))
    if getattr(taken, "rowcount", 1) != 1:
        raise SignInRefused("unknown or already used sign-in state: start signing in again", org_id=org.id,
                            org_slug=org.slug)
    if row.expires_at <= utcnow():
        raise SignInRefused("this sign-in took too long: start signing in again", org_id=org.id, org_slug=org.slug)
    if not binding or not hmac.compare_digest(row.binding_hash, _hash(binding)):
        # The answer reached another browser than the one that started (a link someone was sent): refused, or an
        # attacker could sign a victim in as the attacker.
        raise SignInRefused("this sign-in was started in another browser: start signing in again", org_id=org.id,
                            org_slug=org.slug)
    return row, org


def _exchange(client: httpx.Client, meta: dict[str, Any], provider: OidcProvider, org: Organization, code: str,
              pending: WebSignIn) -> dict[str, Any]:
    """The token response for ``code``, sent with the PKCE verifier (and the client secret, if there is one)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier, "client_id": provider.client_id}
    auth: httpx.BasicAuth | None = None
    if provider.client_secret_env:
        secret = secret_from_env(provider.client_secret_env)
        if secret is None:
            raise ProviderUnavailable(f"organization {org.slug!r} takes its sign-in client secret from "
                                      f"${provider.client_secret_env}, which is not set", org_id=org.id, org_slug=org.slug)
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" in methods:
            # RFC 6749 2.3.1: both are form-encoded before they go into the Basic header.
            auth = httpx.BasicAuth(quote(provider.client_id, safe=""), quote(secret, safe=""))
        else:
            form["client_secret"] = secret
    try:
        response = client.post(meta["token_endpoint"], data=form, auth=auth or httpx.USE_CLIENT_DEFAULT,
                               headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"the sign-in provider could not be reached to redeem the code ({type(exc).__name__})",
                                  org_id=org.id, org_slug=org.slug) from None
    if response.status_code in (400, 401):
        try:
            error = str(response.json().get("error", "invalid_grant"))[:100]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            error = "invalid_grant"
        raise SignInRefused(f"the sign-in provider refused the code ({error}): start signing in again", org_id=org.id,
                            org_slug=org.slug)
    doc = _document(response, org, "token response")
    if not isinstance(doc.get("id_token"), str):
        raise ProviderUnavailable("the sign-in provider's token response has no id_token", org_id=org.id, org_slug=org.slug)
    return doc


def validate_id_token(id_token: str, keys: dict[str, Any], *, issuer: str, client_id: str, nonce: str,
                      access_token: str | None = None, now: int | None = None) -> dict[str, Any]:
    """The claims of ``id_token`` once its signature, issuer, audience, expiry and nonce hold; ``InvalidInput`` naming the
    first problem otherwise."""
    try:
        keyset = KeySet.import_key_set(keys)  # type: ignore[arg-type]  # the provider's JSON, checked by joserfc
        token = jwt.decode(id_token, keyset, algorithms=ALGORITHMS)
    except BadSignatureError:
        raise InvalidInput("the id token's signature does not match the provider's keys") from None
    except JoseError as exc:
        raise InvalidInput(f"the id token cannot be read ({exc.error})") from None
    except (ValueError, TypeError, KeyError):
        raise InvalidInput("the id token or the provider's keys cannot be read") from None
    claims = CodeIDToken(
        token.claims, token.header,
        options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id},
                 "sub": {"essential": True}},
        params={"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    try:
        claims.validate(now=now, leeway=CLOCK_LEEWAY_SECONDS)
    except ExpiredTokenError:
        raise InvalidInput("the id token has expired") from None
    except MissingClaimError as exc:
        raise InvalidInput(f"the id token has no {exc.claim!r} claim") from None
    except InvalidClaimError as exc:
        meaning = {"aud": "is for another client (wrong audience)", "iss": "comes from another issuer",
                   "nonce": "does not answer this sign-in (wrong nonce)", "azp": "was issued to another client (azp)"}
        raise InvalidInput(f"the id token {meaning.get(exc.claim, f'has an invalid {exc.claim!r} claim')}") from None
    except JoseError as exc:
        raise InvalidInput(f"the id token is not valid ({exc.error})") from None
    return dict(claims)


def _groups(claims: dict[str, Any], claim: str) -> list[str]:
    """The group names in ``claim``: a list of strings or one string; a leading ``/`` (Keycloak's paths) is dropped and
    names Cristal cannot hold are left out."""
    value = claims.get(claim)
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    names = []
    for item in items:
        if isinstance(item, str):
            name = item.strip().lstrip("/")
            try:
                names.append(check_group(name))
            except InvalidInput:
                continue
    return names


def _email(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise InvalidInput("the id token has no email claim (ask for the `email` scope at the provider)")
    if claims.get("email_verified") is False:
        raise InvalidInput(f"the provider has not verified the address {email!r}")
    return check_email(email)


def _provision(session: Session, org: Organization, provider: OidcProvider, claims: dict[str, Any]) -> tuple[Principal, bool]:
    """The person the token names, created as a member on first sign-in, with groups from the claim; whether created."""
    email = _email(claims)
    exists = session.scalar(select(User.id).where(User.org_id == org.id, User.email == email)) is not None
    if not exists:
        add_user(session, PROVISIONER, org.slug, email)
    if provider.groups_claim:
        sync_groups(session, PROVISIONER, org.slug, email, _groups(claims, provider.groups_claim))
    return resolve_principal(session, org.slug, email), not exists


def _checked_claims(client: httpx.Client, documents: ProviderDocuments, meta: dict[str, Any], provider: OidcProvider,
                    org: Organization, pending: WebSignIn, tokens: dict[str, Any]) -> dict[str, Any]:
    """The id token's claims, checked with the provider's keys: the kept ones, then once more with fresh ones."""
    url = meta["jwks_uri"]
    was_kept = documents.kept(url)

    def check(keys: dict[str, Any]) -> dict[str, Any]:
        return validate_id_token(tokens["id_token"], keys, issuer=provider.issuer, client_id=provider.client_id,
                                 nonce=pending.nonce, access_token=tokens.get("access_token"))

    try:
        return check(documents.get(client, url, org, "keys (JWKS)"))
    except InvalidInput:
        if not was_kept:
            raise
    return check(documents.get(client, url, org, "keys (JWKS)", fresh=True))


def finish(db: Database, settings: Settings, *, state: str, code: str | None, error: str | None,
           binding: str | None, documents: ProviderDocuments | None = None) -> SignedIn:
    """Finish a sign-in with the provider's answer (``state``, and ``code`` or ``error``) and the browser's cookie."""
    documents = documents or ProviderDocuments()
    pending, org = _take_sign_in(db, state, binding)
    if error or not code:
        raise SignInRefused(f"the sign-in provider did not sign you in ({(error or 'no code')[:100]})", org_id=org.id,
                            org_slug=org.slug)
    with db.session() as session:
        provider = _provider(session, org)
        session.expunge(provider)
    with httpx.Client(timeout=settings.oidc_timeout_seconds, follow_redirects=False) as client:
        meta = _discover(client, documents, provider, org)
        tokens = _exchange(client, meta, provider, org, code, pending)
        try:
            claims = _checked_claims(client, documents, meta, provider, org, pending, tokens)
        except InvalidInput as exc:
            raise SignInRefused(f"sign-in refused: {exc.message}", org_id=org.id, org_slug=org.slug) from None
    try:
        with db.session() as session:
            principal, created = _provision(session, org, provider, claims)
            token, expires_at = create_session(session, principal, issuer=provider.issuer, subject=str(claims["sub"]),
                                               lifetime=timedelta(hours=settings.session_hours),
                                               details={"first_sign_in": created})
    except InvalidInput as exc:
        raise SignInRefused(f"sign-in refused: {exc.message}", org_id=org.id, org_slug=org.slug) from None
    return SignedIn(principal, token, expires_at)
