"""The S3 connector against a real S3 API on loopback (moto in server mode): prefixes as scopes,
ETags for change detection, tags and metadata as access rules, bounded paged listing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from sqlalchemy import select

from cristal.db import Database
from cristal.errors import InvalidInput
from cristal.identity import users
from cristal.knowledge import sources
from cristal.knowledge.schema import Document, Source
from cristal.knowledge.sync import SyncReport, sync_source

from ..conftest import INSTALLATION
from .conftest import found

BACKENDS = ("sqlite", "postgres")
KEYS = {"S3_TEST_KEY": "AKIDEXAMPLE", "S3_TEST_SECRET": "not-a-real-secret"}


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=KEYS["S3_TEST_KEY"], aws_secret_access_key=KEYS["S3_TEST_SECRET"])
    name = "docs-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=name)
    yield client, name


def settings(endpoint: str, **more: Any) -> dict:
    return {"endpoint_url": endpoint, "access_key_env": "S3_TEST_KEY", "secret_key_env": "S3_TEST_SECRET", **more}


def put(client: Any, bucket: str, key: str, text: str, tags: str | None = None, metadata: dict | None = None) -> None:
    extra: dict[str, Any] = {}
    if tags is not None:
        extra["Tagging"] = tags
    if metadata is not None:
        extra["Metadata"] = metadata
    client.put_object(Bucket=bucket, Key=key, Body=text.encode(), **extra)


def add(db: Database, uri: str, config: dict, acl: str | None = None) -> None:
    with db.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "bucket", "s3", uri, acl=acl, config=config)


def sync(db: Database) -> SyncReport:
    return sync_source(db, INSTALLATION, "acme", "bucket", embed=False)


def keys(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Document.external_id)))


def test_prefixes_tags_and_etags(two_orgs: Database, bucket: tuple[Any, str], s3_endpoint: str) -> None:
    client, name = bucket
    with two_orgs.session() as s:
        users.add_user(s, INSTALLATION, "acme", "hr@acme.example", groups=["hr"])
    put(client, name, "policies/travel.md", "# Travel\n\nHotels in Munich may cost up to 150 EUR per night.")
    put(client, name, "policies/meals.txt", "The per diem for meals is 28 EUR.", tags="access=everyone")
    put(client, name, "hr/bands.md", "# Salary bands\n\nSenior salary bands are reviewed yearly.", tags="access=hr-staff")
    put(client, name, "hr/contract.md", "# Contract\n\nNimbus salary clause.", tags="access=legal-team")
    put(client, name, "hr/photo.png", "not a document")
    put(client, name, "other/board.md", "# Board\n\nOutside the configured prefixes.")
    add(two_orgs, f"s3://{name}", settings(s3_endpoint, prefixes=["policies/", "hr/"], acl_tag="access",
                                               principals={"everyone": "org", "hr-staff": "group:hr"}), acl="group:finance")
    report = sync(two_orgs)
    assert keys(two_orgs) == {"policies/travel.md", "policies/meals.txt", "hr/bands.md", "hr/contract.md"}
    assert report.skipped == [{"id": "(principals)", "reason": "source principals without a mapping grant nothing: legal-team"}]

    assert found(two_orgs, "hr@acme.example", "salary") == {f"s3://{name}/hr/bands.md"}
    assert found(two_orgs, "fin@acme.example", "salary") == set()  # not in the mapped group
    assert found(two_orgs, "admin@acme.example", "Nimbus") == {f"s3://{name}/hr/contract.md"}  # unmapped: admins only
    assert found(two_orgs, "fin@acme.example", "Munich") == {f"s3://{name}/policies/travel.md"}  # no tag: the source's --acl
    assert found(two_orgs, "eng@acme.example", "Munich") == set()
    assert found(two_orgs, "eng@acme.example", "per diem") == {f"s3://{name}/policies/meals.txt"}

    again = sync(two_orgs)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)

    # Permissions change at the source (tags only: the ETag stays), content changes, an object goes.
    client.put_object_tagging(Bucket=name, Key="hr/bands.md", Tagging={"TagSet": [{"Key": "access", "Value": "everyone"}]})
    client.put_object_tagging(Bucket=name, Key="policies/meals.txt", Tagging={"TagSet": [{"Key": "access", "Value": "hr-staff"}]})
    put(client, name, "policies/travel.md", "# Travel\n\nHotels in Munich may cost up to 180 EUR per night.")
    client.delete_object(Bucket=name, Key="hr/contract.md")
    changed = sync(two_orgs)
    assert (changed.access_changed, changed.updated, changed.deleted, changed.unchanged) == (2, 1, 1, 0)
    assert found(two_orgs, "eng@acme.example", "salary") == {f"s3://{name}/hr/bands.md"}
    assert found(two_orgs, "eng@acme.example", "per diem") == set()  # revoked at the source
    assert found(two_orgs, "fin@acme.example", "180 EUR") == {f"s3://{name}/policies/travel.md"}


def test_metadata_as_access_rules(two_orgs: Database, bucket: tuple[Any, str], s3_endpoint: str) -> None:
    client, name = bucket
    put(client, name, "q3.md", "# Q3\n\nRevenue in Q3 was 4.2 million EUR.", metadata={"readers": "controlling, board"})
    add(two_orgs, f"s3://{name}", settings(s3_endpoint, acl_metadata="readers", principals={"controlling": "group:finance"}))
    sync(two_orgs)
    assert found(two_orgs, "fin@acme.example", "revenue") == {f"s3://{name}/q3.md"}
    assert found(two_orgs, "eng@acme.example", "revenue") == set()


def test_a_bucket_with_many_keys_is_listed_in_pages_and_bounded(two_orgs: Database, bucket: tuple[Any, str], s3_endpoint: str) -> None:
    client, name = bucket
    for n in range(45):
        put(client, name, f"notes/{n:03}.txt", f"Note number {n}.")
    add(two_orgs, f"s3://{name}/notes/", settings(s3_endpoint, page_size=10))
    assert sync(two_orgs).added == 45  # five pages of ten
    with two_orgs.session() as s:
        source = s.scalar(select(Source))
        source.options = {"config": {**source.options["config"], "max_objects": 25}}
    report = sync(two_orgs)
    assert report.skipped == [{"id": f"s3://{name}/notes/", "reason": "listing stopped at 25 objects (max_objects); nothing deleted"}]
    assert report.deleted == 0 and len(keys(two_orgs)) == 45


def test_unreachable_bucket_or_missing_credentials_delete_nothing(
    two_orgs: Database, bucket: tuple[Any, str], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = bucket
    put(client, name, "a.md", "# A\n\nSome text about Osaka.")
    add(two_orgs, f"s3://{name}", settings(s3_endpoint))
    assert sync(two_orgs).added == 1
    monkeypatch.delenv("S3_TEST_SECRET")
    missing = sync(two_orgs)
    assert missing.skipped == [{"id": f"s3://{name}", "reason": "environment variable S3_TEST_SECRET (S3 secret key) is not set"}]
    assert missing.deleted == 0
    monkeypatch.setenv("S3_TEST_SECRET", KEYS["S3_TEST_SECRET"])
    client.delete_object(Bucket=name, Key="a.md")
    client.delete_bucket(Bucket=name)
    gone = sync(two_orgs)
    assert gone.skipped[0]["reason"].startswith("cannot list objects (NoSuchBucket:")
    assert gone.deleted == 0 and keys(two_orgs) == {"a.md"}


def test_oversized_objects_are_reported(two_orgs: Database, bucket: tuple[Any, str], s3_endpoint: str) -> None:
    client, name = bucket
    put(client, name, "big.txt", "x" * 5000)
    put(client, name, "small.txt", "Small text.")
    add(two_orgs, f"s3://{name}", settings(s3_endpoint, max_object_bytes=1000))
    report = sync(two_orgs)
    assert report.skipped == [{"id": "big.txt", "reason": "object too large: 4.9 KB > 1000 B limit"}]
    assert keys(two_orgs) == {"small.txt"}


@pytest.mark.parametrize(("uri", "config", "message"), [
    ("https://bucket", {}, "invalid s3 source 'https://bucket': use s3://BUCKET or s3://BUCKET/PREFIX"),
    ("s3://Bad_Bucket", {}, "invalid bucket name 'Bad_Bucket'"),
    ("s3://docs", {"page_size": 5000}, "s3 source settings: page_size: Input should be less than or equal to 1000"),
    ("s3://docs", {"addressing_style": "sideways"}, "s3 source settings: addressing_style: String should match pattern"),
])
def test_bad_input_is_refused(two_orgs: Database, uri: str, config: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as exc, two_orgs.session() as s:
        sources.add_source(s, INSTALLATION, "acme", "bucket", "s3", uri, config=config)
    assert str(exc.value).startswith(message)
