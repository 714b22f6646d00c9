"""The S3 connector: objects of an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...) under some prefixes.

``--uri s3://BUCKET/PREFIX`` names the bucket and the default prefix; the
settings file adds ``endpoint_url`` (any S3-compatible server), ``region``,
the environment variables holding the access key (``access_key_env``,
``secret_key_env``, ``session_token_env``; without them boto3's own chain
applies: ``AWS_*`` variables, ``~/.aws``, an instance role), ``prefixes``
(each one a scope: a prefix whose listing fails keeps its documents) and
limits. Objects are parsed by their key's extension, like files.

Change detection: the listing carries each object's ETag, which is the
item's fingerprint, so an unchanged object is never downloaded. A download
asks for that ETag (``If-Match``), so an object replaced during the sync is
reported rather than indexed under the old ETag.

Access from the source: with ``acl_tag`` (an object tag) or ``acl_metadata``
(a user metadata field, ``x-amz-meta-NAME``) the principals an object names
(separated by spaces or commas) go through the ``principals`` mapping; an
object that names none gets the source's ``--acl``. Tags and metadata can
change without changing the ETag, so they are read for every object on
every sync (one request per object; without these settings there is none).

Listing is paged (``page_size`` keys per request) and bounded: after
``max_objects`` objects the sync stops listing, says so, and deletes nothing.
boto3 is imported when a sync runs, not when Cristal starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

from pydantic import Field

from cristal.errors import InvalidInput
from cristal.knowledge.connectors.base import Item, ScanProblem, ScanScope
from cristal.knowledge.connectors.fetch import human_size
from cristal.knowledge.connectors.settings import MissingCredential, PrincipalMap, SourceSettings, from_env, unreachable
from cristal.knowledge.parse import DEFAULT_MAX_BYTES, SUPPORTED_EXTENSIONS

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PRINCIPALS = re.compile(r"[\s,]+")


class S3Settings(SourceSettings):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_env: str | None = None
    secret_key_env: str | None = None
    session_token_env: str | None = None
    prefixes: list[str] = Field(default_factory=list)
    acl_tag: str | None = None
    acl_metadata: str | None = None
    addressing_style: str = Field("path", pattern="^(path|virtual|auto)$")
    max_objects: int = Field(100_000, ge=1, le=10_000_000)
    max_object_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1)
    page_size: int = Field(1000, ge=1, le=1000)
    timeout_seconds: float = Field(30.0, gt=0, le=600)


def parse_uri(uri: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix``, or ``InvalidInput``."""
    if not uri.startswith("s3://"):
        raise InvalidInput(f"invalid s3 source {uri!r}: use s3://BUCKET or s3://BUCKET/PREFIX")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidInput(f"invalid bucket name {bucket!r}: 3-63 lowercase letters, digits, '.' and '-'")
    return bucket, prefix


class S3Connector:
    kind = "s3"
    settings_model = S3Settings

    def __init__(self, uri: str, acl: tuple[str, ...] | None, options: dict | None = None) -> None:
        self.bucket, prefix = parse_uri(uri)
        self.settings = S3Settings.model_validate((options or {}).get("config") or {})
        self.prefixes = sorted(set(self.settings.prefixes or [prefix]))
        self.acl = acl
        self.map = PrincipalMap(self.settings.principals)
        self.scope = ScanScope()
        self._client: Any = None

    @staticmethod
    def validate(uri: str) -> str:
        parse_uri(uri)
        return uri

    def client(self) -> Any:
        if self._client is None:
            import boto3  # here, not at the top: boto3 takes a while to import and only syncs need it
            from botocore.config import Config

            s = self.settings
            keys: dict[str, str] = {}
            if s.access_key_env or s.secret_key_env:
                keys["aws_access_key_id"] = from_env(s.access_key_env or "", "S3 access key")
                keys["aws_secret_access_key"] = from_env(s.secret_key_env or "", "S3 secret key")
            if s.session_token_env:
                keys["aws_session_token"] = from_env(s.session_token_env, "S3 session token")
            config = Config(s3={"addressing_style": s.addressing_style}, connect_timeout=s.timeout_seconds,
                            read_timeout=s.timeout_seconds, retries={"max_attempts": 3, "mode": "standard"})
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=s.endpoint_url, region_name=s.region, config=config, **keys)
        return self._client

    def scan(self) -> Iterator[Item | ScanProblem]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self.client()
        except MissingCredential as exc:
            yield unreachable(self.scope, f"s3://{self.bucket}", str(exc))
            return
        listed = 0
        for prefix in self.prefixes:
            try:
                for entry in self._list(client, prefix, self.settings.max_objects - listed):
                    if entry is None:  # the bound was reached
                        self.scope.complete = False
                        yield ScanProblem(f"s3://{self.bucket}/{prefix}", f"listing stopped at {self.settings.max_objects} "
                                                                         "objects (max_objects); nothing deleted")
                        return
                    listed += 1
                    yield from self._object(client, entry)
            except (ClientError, BotoCoreError) as exc:
                self.scope.unseen_prefixes.append(prefix)
                yield ScanProblem(f"s3://{self.bucket}/{prefix}", f"cannot list objects ({_reason(exc)})")
        yield from self.map.problems()

    def _list(self, client: Any, prefix: str, room: int) -> Iterator[dict | None]:
        """Objects under a prefix, one page at a time; ``None`` once ``room`` objects were given."""
        token: str | None = None
        given = 0
        while True:
            request = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self.settings.page_size}
            if token:
                request["ContinuationToken"] = token
            page = client.list_objects_v2(**request)
            for entry in page.get("Contents", []):
                if given >= room:
                    yield None
                    return
                given += 1
                yield entry
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _object(self, client: Any, entry: dict) -> Iterator[Item | ScanProblem]:
        from botocore.exceptions import BotoCoreError, ClientError

        key: str = entry["Key"]
        name = PurePosixPath(key).name
        if key.endswith("/") or name.startswith(".") or PurePosixPath(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
            return
        size = int(entry.get("Size", 0))
        if size > self.settings.max_object_bytes:
            yield ScanProblem(key, f"object too large: {human_size(size)} > {human_size(self.settings.max_object_bytes)} limit")
            return
        etag = str(entry.get("ETag", ""))
        try:
            principals = self._principals(client, key)
        except (ClientError, BotoCoreError) as exc:
            yield ScanProblem(key, f"cannot read its access tags ({_reason(exc)})")
            return
        modified = entry.get("LastModified")
        yield Item(
            external_id=key, uri=f"s3://{self.bucket}/{key}", filename=name,
            acl=self.acl if principals is None else self.map.rules(principals),
            mtime=modified.timestamp() if modified is not None else None, size=size,
            read=self._reader(client, key, etag), fingerprint=f"etag:{etag}",
        )

    def _principals(self, client: Any, key: str) -> list[str] | None:
        s = self.settings
        found: list[str] | None = None
        if s.acl_tag:
            tags = client.get_object_tagging(Bucket=self.bucket, Key=key).get("TagSet", [])
            values = [t["Value"] for t in tags if t.get("Key") == s.acl_tag]
            if values:
                found = [p for v in values for p in _PRINCIPALS.split(v) if p]
        if s.acl_metadata:
            meta = client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {})
            value = meta.get(s.acl_metadata.lower())
            if value is not None:
                found = (found or []) + [p for p in _PRINCIPALS.split(value) if p]
        return found

    def _reader(self, client: Any, key: str, etag: str) -> Callable[[], bytes]:
        def read() -> bytes:
            from botocore.exceptions import BotoCoreError, ClientError

            limit = self.settings.max_object_bytes
            try:
                body = client.get_object(Bucket=self.bucket, Key=key, IfMatch=etag)["Body"]
                data: bytes = body.read(limit + 1)
                body.close()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                    raise OSError("the object changed during the sync; the next sync indexes it") from None
                raise OSError(_reason(exc)) from None
            except BotoCoreError as exc:
                raise OSError(_reason(exc)) from None
            if len(data) > limit:
                raise OSError("the object grew beyond the size limit during the sync")
            return data

        return read


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        error = response["Error"]
        code = error.get("Code", "")
        message = " ".join(str(error.get("Message", "")).split())
        return f"{code}: {message}" if message else str(code)
    return " ".join(str(exc).split())[:200]
