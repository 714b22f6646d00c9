"""A real OpenID Connect provider on loopback, built from Authlib's server components, for tests and demos.

It speaks the authorization code flow with PKCE (S256, required) as a
company's identity provider does: a discovery document, a JWKS, a login page
(``GET /authorize`` shows a form, ``POST /authorize`` checks the password and
redirects back with a code), and a token endpoint that authenticates the
client (``client_secret_basic``, ``client_secret_post`` or none for a public
client), redeems each code once and issues an RS256-signed id token::

    with OidcProvider(users=[ProviderUser("ana@acme.example", "pw", groups=["finance"])]) as idp:
        idp.add_client("cristal-acme", "s3cret", ["http://127.0.0.1:8000/auth/callback"])
        ...  # idp.issuer is the issuer URL to configure

Tests make it misbehave the way real providers and attackers do:
``discovery_override`` replaces entries of the discovery document,
``claims_override`` replaces claims of the next id tokens (another ``aud``,
an ``exp`` in the past, another ``nonce``) and ``sign_with_foreign_key``
signs them with a key that is not in the JWKS (under the published key's
``kid``), and ``rotate_key`` replaces the published key. ``requests``
counts the requests per path. ``http.server`` in a
background thread, as ``ScriptedModel``: no framework beyond Authlib.
"""

from __future__ import annotations

import html
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.models import AuthorizationCodeMixin
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import RSAKey


@dataclass
class ProviderUser:
    """A person the provider knows: signs in with ``email`` and ``password``; ``groups`` go into the groups claim."""

    email: str
    password: str
    groups: list[str] = field(default_factory=list)
    sub: str = ""
    email_verified: bool = True

    def __post_init__(self) -> None:
        self.sub = self.sub or "sub-" + self.email


@dataclass
class ProviderClient(ClientMixin):
    """A relying party registered at the provider; ``secret=None`` is a public client (PKCE alone)."""

    client_id: str
    secret: str | None
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: Collection[str] | str) -> str:
        asked = scope.split() if isinstance(scope, str) else list(scope)
        return " ".join(s for s in asked if s in ("openid", "email", "profile", "groups"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and client_secret == self.secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ProviderUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class _Payload(OAuth2Payload):
    def __init__(self, data: dict[str, str], datalist: defaultdict[str, list[str]]) -> None:
        self._data, self._datalist = data, datalist

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist  # Authlib refuses a parameter given twice, as the spec says


class _Request(OAuth2Request):
    """One HTTP request as Authlib's framework-neutral request: query and form merged into the payload."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], form: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))
        self._form = dict(form)
        datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in [*parse_qsl(urlsplit(uri).query, keep_blank_values=True), *form]:
            datalist[key].append(value)
        self.payload = _Payload({**self._args, **self._form}, datalist)

    @property
    def args(self) -> dict[str, str | None]:
        return dict(self._args)

    @property
    def form(self) -> dict[str, str]:
        return self._form


class OidcProvider:
    """An OpenID Connect provider on ``127.0.0.1``; ``issuer`` is its URL."""

    def __init__(self, users: list[ProviderUser] | None = None, *, groups_claim: str = "groups") -> None:
        self.users = {u.email: u for u in users or []}
        self.clients: dict[str, ProviderClient] = {}
        self.groups_claim = groups_claim
        self.claims_override: dict[str, Any] = {}
        self.discovery_override: dict[str, Any] = {}
        self.sign_with_foreign_key = False
        self._kid = 1
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.foreign_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)  # path -> how many requests it had
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.server = self._authorization_server()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_client(self, client_id: str, secret: str | None, redirect_uris: list[str]) -> ProviderClient:
        client = ProviderClient(client_id, secret, list(redirect_uris))
        self.clients[client_id] = client
        return client

    def add_user(self, user: ProviderUser) -> None:
        self.users[user.email] = user

    def rotate_key(self) -> None:
        """Sign from now on with a new key (a new ``kid``), published in the JWKS instead of the old one."""
        self._kid += 1
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"k{self._kid}", "use": "sig", "alg": "RS256"})

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "name", self.groups_claim],
            **self.discovery_override,
        }

    # -- Authlib's server, wired to this object's users, clients and codes

    def _authorization_server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> ClientMixin:
                return provider.clients.get(client_id)  # type: ignore[return-value]  # Authlib takes None as unknown

            def save_token(self, token: dict, request: OAuth2Request) -> None:
                return None  # no resource server here: the id token is what the relying party uses

            def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
                return status, body, list(headers)

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                return None

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")  # Authlib only tests membership

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                payload, client, user = request.payload, request.client, request.user
                assert payload is not None and client is not None and isinstance(user, ProviderUser)
                with provider._lock:
                    provider._codes[code] = _Code(
                        code=code, client_id=client.get_client_id(), redirect_uri=payload.redirect_uri,
                        scope=request.scope, user=user, nonce=payload.data.get("nonce"),
                        code_challenge=payload.data.get("code_challenge"),
                        code_challenge_method=payload.data.get("code_challenge_method"), auth_time=int(time.time()))

            def query_authorization_code(self, code: str, client: ClientMixin) -> _Code | None:
                with provider._lock:
                    item = provider._codes.get(code)
                return item if item is not None and item.client_id == client.get_client_id() else None

            def delete_authorization_code(self, authorization_code: _Code) -> None:
                with provider._lock:  # a code is redeemed once
                    provider._codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: _Code) -> ProviderUser:
                return authorization_code.user

        class Pkce(CodeChallenge):
            def get_authorization_code_challenge(self, authorization_code: _Code) -> str | None:
                return authorization_code.code_challenge

            def get_authorization_code_challenge_method(self, authorization_code: _Code) -> str | None:
                return authorization_code.code_challenge_method

        class IdTokens(OpenIDCode):
            def resolve_client_private_key(self, client: ProviderClient) -> RSAKey:
                return provider.foreign_key if provider.sign_with_foreign_key else provider.key

            def get_client_claims(self, client: ProviderClient) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.get_client_id()], "exp": int(time.time()) + 300}

            def get_client_algorithm(self, client: ProviderClient) -> str:
                return "RS256"

            def get_encode_header(self, client: ProviderClient) -> dict[str, str]:
                return {"alg": "RS256", "kid": str(provider.key.kid)}

            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                with provider._lock:
                    return any(c.nonce == nonce for c in provider._codes.values())

            def generate_user_info(self, user: ProviderUser, scope: str) -> UserInfo:
                info = UserInfo(sub=user.sub, email=user.email, email_verified=user.email_verified,
                                name=user.email.split("@")[0])
                info[provider.groups_claim] = list(user.groups)
                # Last, so that a test can replace any claim (aud, exp, nonce, iss...): user info is merged after them.
                info.update(provider.claims_override)
                return info

        server = Server(scopes_supported=["openid", "email", "profile", "groups"])
        server.register_token_generator("default", BearerTokenGenerator(lambda *a, **k: generate_token(42)))
        server.register_grant(CodeGrant, [Pkce(required=True), IdTokens(require_nonce=True)])
        return server

    # -- HTTP

    def _handle(self, method: str, path: str, headers: dict[str, str], form: list[tuple[str, str]]) -> tuple[int, str, str, dict[str, str]]:
        """(status, content type, body, extra headers) for one request."""
        uri = self.issuer + path
        route = urlsplit(path).path
        with self._lock:
            self.requests[route] += 1
        if method == "GET" and route == "/.well-known/openid-configuration":
            return 200, "application/json", json.dumps(self.discovery()), {}
        if method == "GET" and route == "/jwks":
            return 200, "application/json", json.dumps({"keys": [self.key.as_dict(private=False)]}), {}
        if route == "/authorize":
            return self._authorize(method, uri, headers, form)
        if method == "POST" and route == "/token":
            return _answer(self.server.create_token_response(_Request("POST", uri, headers, form)))
        return 404, "application/json", json.dumps({"error": "not_found"}), {}

    def _authorize(self, method: str, uri: str, headers: dict[str, str],
                   form: list[tuple[str, str]]) -> tuple[int, str, str, dict[str, str]]:
        query = list(parse_qsl(urlsplit(uri).query, keep_blank_values=True))
        if method == "POST":
            fields = dict(form)
            query = [(k, v) for k, v in form if k not in ("email", "password")]
            request = _Request("GET", self.issuer + "/authorize?" + "&".join(f"{k}={_q(v)}" for k, v in query), headers, [])
            user = self.users.get(fields.get("email", ""))
            if user is None or user.password != fields.get("password"):
                return self._login_page(query, "Wrong e-mail address or password.")
            try:
                grant = self.server.get_consent_grant(request=request, end_user=user)
            except OAuth2Error as exc:
                return 400, "application/json", json.dumps({"error": exc.error, "error_description": exc.description}), {}
            return _answer(self.server.create_authorization_response(request=request, grant_user=user, grant=grant))
        try:
            self.server.get_consent_grant(request=_Request("GET", uri, headers, []))
        except OAuth2Error as exc:
            return 400, "application/json", json.dumps({"error": exc.error, "error_description": exc.description}), {}
        return self._login_page(query, "")

    def _login_page(self, query: list[tuple[str, str]], error: str) -> tuple[int, str, str, dict[str, str]]:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query)
        message = f'<p role="alert">{html.escape(error)}</p>' if error else ""
        page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Company sign-in</title></head><body>"
                "<h1>Company sign-in</h1>" + message + '<form method="post" action="/authorize">' + hidden +
                '<label>E-mail <input name="email" type="email" autocomplete="username"></label> '
                '<label>Password <input name="password" type="password" autocomplete="current-password"></label> '
                '<button type="submit">Continue</button></form></body></html>')
        return 200, "text/html; charset=utf-8", page, {}

    def start(self) -> OidcProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                form = parse_qsl(raw, keep_blank_values=True) if method == "POST" else []
                headers = {k: v for k, v in self.headers.items()}
                try:
                    status, ctype, body, extra = provider._handle(method, self.path, headers, form)
                except Exception as exc:  # noqa: BLE001 - a test double answers 500 rather than dropping the connection
                    status, ctype, body, extra = 500, "application/json", json.dumps({"error": str(exc)}), {}
                data = body.encode()
                self.send_response(status)
                for key, value in extra.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # http.server's naming
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer(result: Any) -> tuple[int, str, str, dict[str, str]]:
    """Authlib's (status, body, headers) as this server's answer (the stubs type it loosely)."""
    status, body, headers = result
    return int(status), "application/json", body if isinstance(body, str) else json.dumps(body or {}), dict(headers)


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
