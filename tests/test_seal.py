"""The `secured` seal: verifies intact records, names altered fields, refuses bad keys."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.errors import SealError
from aggregator.export.fields import record_to_public
from aggregator.export.markdown import parse_markdown, render_markdown
from aggregator.export.seal import (
    KEY_ENV,
    WRONG_KEY,
    Sealer,
    canonical_json,
    instance_id,
    load_or_create_key,
    open_seal,
    public_hash,
    seal_payload,
    seal_record,
    verify_record,
)
from aggregator.models import Image, Provenance, Provider, Record, RelatedRecord

KEY = bytes(range(32))
OTHER_KEY = bytes(32)
INSTANCE = "5b0d7a4e-7a57-4b8e-9d7c-2f3c9a1e0b11"
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def make_record() -> Record:
    return Record(
        title="City police eye facial recognition",
        web_url="https://news.example/police",
        provider=Provider("News Example", "news.example"),
        published=datetime(2020, 2, 2, 11, 6, tzinfo=UTC),
        topics=("AI",),
        images=(Image("https://news.example/a.jpg", 640, 480, "caption"),),
        quality=59,
        provenance=Provenance(
            "example", "https://news.example/rss", "g1", datetime(2020, 2, 2, 12, tzinfo=UTC)
        ),
    )


def sealed(record: Record, key: bytes = KEY) -> Record:
    return dataclasses.replace(record, secured=seal_record(record, key, INSTANCE))


def test_seal_has_the_seed_shape_and_a_fresh_nonce() -> None:
    record = make_record()
    first, second = seal_record(record, KEY, INSTANCE), seal_record(record, KEY, INSTANCE)
    ciphertext, nonce = first.split(";")
    assert len(base64.b64decode(nonce, validate=True)) == 12
    assert base64.b64decode(ciphertext, validate=True)
    assert first != second


def test_intact_record_verifies_with_its_provenance() -> None:
    result = verify_record(sealed(make_record()), KEY)
    assert result.ok and result.differing == ()
    assert result.provenance == {
        "source": "https://news.example/rss",
        "fetched": "2020-02-02T12:00:00Z",
        "instance": INSTANCE,
    }


def test_seal_survives_a_markdown_round_trip() -> None:
    record = parse_markdown(render_markdown(sealed(make_record())))
    assert verify_record(record, KEY).ok


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "Police ban facial recognition"}, "title"),
        ({"quality": 99}, "quality"),
        ({"is_published": True}, "published"),
        ({"provider": Provider("Fake News", "news.example")}, "provider"),
        ({"topics": ("AI", "Crypto")}, "topics"),
        ({"published": datetime(2021, 1, 1, tzinfo=UTC)}, "publishedDateTime"),
    ],
)
def test_altered_field_is_named(change: dict[str, object], field: str) -> None:
    tampered = dataclasses.replace(sealed(make_record()), **change)  # type: ignore[arg-type]
    result = verify_record(tampered, KEY)
    assert not result.ok
    assert result.differing == (field,)
    assert field in result.message
    assert result.provenance["instance"] == INSTANCE


def test_tampered_markdown_names_the_field() -> None:
    text = render_markdown(sealed(make_record()))
    edited = text.replace("quality: 59", "quality: 95")
    result = verify_record(parse_markdown(edited), KEY)
    assert (result.ok, result.differing) == (False, ("quality",))


def test_wrong_key_fails_cleanly() -> None:
    result = verify_record(sealed(make_record(), OTHER_KEY), KEY)
    assert (result.ok, result.message, result.differing) == (False, WRONG_KEY, ())


def test_foreign_seed_seal_fails_cleanly(seed_file: Path) -> None:
    record = parse_markdown(seed_file.read_text(encoding="utf-8"))
    result = verify_record(record, KEY)
    assert not result.ok and result.message == WRONG_KEY


@pytest.mark.parametrize("secured", ["", "no-separator", "a;b;c", "!!!;???", "QUJD;QUJD"])
def test_malformed_seals_do_not_crash(secured: str) -> None:
    result = verify_record(dataclasses.replace(make_record(), secured=secured), KEY)
    assert not result.ok and result.message


def test_open_seal_raises_seal_error_for_a_foreign_seal() -> None:
    with pytest.raises(SealError, match="different key"):
        open_seal(seal_record(make_record(), OTHER_KEY, INSTANCE), KEY)


def test_public_hash_ignores_secured_and_private_fields() -> None:
    record = make_record()
    other = dataclasses.replace(record, secured="x;y", text="body", provenance=Provenance())
    assert public_hash(record) == public_hash(other)
    assert public_hash(record) != public_hash(dataclasses.replace(record, heat=3))


@posix_only
def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = load_or_create_key(data_dir, environ={})
    path = data_dir / "secret.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(data_dir, environ={}) == key
    assert [p.name for p in data_dir.iterdir()] == ["secret.key"], "no temp files left"


@posix_only
def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, environ={})
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(SealError, match="chmod 600"):
        load_or_create_key(tmp_path, environ={})


def test_corrupt_key_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("c2VjcmV0\n")
    path.chmod(0o600)
    with pytest.raises(SealError, match="32 bytes") as info:
        load_or_create_key(tmp_path, environ={})
    assert "c2VjcmV0" not in str(info.value)


def test_env_key_wins_and_creates_no_file(tmp_path: Path) -> None:
    environ = {KEY_ENV: base64.b64encode(KEY).decode()}
    assert load_or_create_key(tmp_path, environ=environ) == KEY
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_malformed_env_key_is_a_seal_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(SealError, match=KEY_ENV):
        load_or_create_key(tmp_path, environ={KEY_ENV: value})


def test_env_key_is_read_from_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    assert load_or_create_key(tmp_path) == KEY


def test_instance_id_is_a_persisted_uuid(tmp_path: Path) -> None:
    first = instance_id(tmp_path)
    assert instance_id(tmp_path) == first
    assert (tmp_path / "instance.id").read_text().strip() == first


def test_corrupt_instance_id_is_a_seal_error(tmp_path: Path) -> None:
    (tmp_path / "instance.id").write_text("../../etc\n")
    with pytest.raises(SealError, match="instance id"):
        instance_id(tmp_path)


def hostile_record() -> Record:
    """Non-ASCII, escapes, empty lists and None: every kind of value the seal encodes."""
    related = RelatedRecord(
        title='Zoë said "no"\u2028',
        excerpt="",
        published=None,
        web_url="https://news.example/r",
        amp_web_url="",
        cdn_amp_web_url="",
        type="article",
        provider=Provider("R", "r.example"),
        quality=3,
        images=(Image("https://news.example/r.jpg", None, 5),),
    )
    return dataclasses.replace(make_record(), title="Café \ud800 \\ tab\t", related=(related,))


@pytest.mark.parametrize("record", [make_record(), hostile_record()])
def test_a_renewed_seal_holds_the_plain_payload(record: Record) -> None:
    """Sealer.renewed splices the document from each field's encoding: same hashes."""
    sealer = Sealer(KEY, INSTANCE)
    public = record_to_public(record)
    related = canonical_json(public["related"]).decode("ascii")
    for given in (None, {"related": related}):
        secured = sealer.renewed(record, public, given)
        assert secured is not None
        assert open_seal(secured, KEY) == seal_payload(record, INSTANCE)
        assert sealer.renewed(dataclasses.replace(record, secured=secured), public, given) is None
