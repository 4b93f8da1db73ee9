"""The `secured` field: sealed provenance that only the instance's key holder can check.

    secured = base64(AES-256-GCM(key, nonce, payload, aad)) + ";" + base64(nonce)
    payload = {"v": 1, "source": feed URL, "fetched": RFC 3339 | null, "instance": uuid,
               "hash": sha256 of the canonical JSON of every public field but `secured`,
               "fields": {public key: first 16 hex of sha256 of that field's canonical JSON}}

Canonical JSON is `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
`hash` decides whether a record is intact; `fields` only tells which field differs.

The key comes from ``AGGREGATOR_SECRET_KEY`` (base64 of 32 bytes) or ``data_dir/secret.key``
(the same base64 text), created on first use with mode 0600. On POSIX an existing key file
that the group or others may read is refused with SealError: a leaked key lets anyone forge
seals, so failing loudly beats warning into a log nobody reads. The key is never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aggregator.dates import format_utc
from aggregator.errors import SealError
from aggregator.export.fields import record_to_public
from aggregator.export.files import create_new_file
from aggregator.models import Record

SEAL_VERSION = 1
AAD = b"aggregator-seal-v1"
KEY_ENV = "AGGREGATOR_SECRET_KEY"
KEY_FILE = "secret.key"
INSTANCE_FILE = "instance.id"
KEY_BYTES = 32
NONCE_BYTES = 12
WRONG_KEY = "sealed with a different key (or corrupted)"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking a record's seal against its public fields."""

    ok: bool
    message: str
    differing: tuple[str, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)


def load_or_create_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """Return the 32-byte sealing key from the environment or `data_dir/secret.key`.

    The file is created (mode 0600, atomically, never overwritten) when absent.
    Raises SealError when the key is malformed or the key file is group/world-readable.
    """
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return _decode_key(env[KEY_ENV], KEY_ENV)
    path = data_dir / KEY_FILE
    if not path.exists():
        encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
        _create_once(path, encoded, mode=0o600)
    return _read_key_file(path)


def _create_once(path: Path, data: bytes, mode: int) -> None:
    """Create `path` unless another process just did; OSError becomes SealError."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_new_file(path, data, mode=mode)
    except OSError as exc:
        raise SealError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SealError(f"{path} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise SealError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SealError(f"cannot read the key file {path}: {exc.__class__.__name__}") from exc
    return _decode_key(text, str(path))


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealError(f"{where}: not valid base64") from None
    if len(key) != KEY_BYTES:
        raise SealError(f"{where}: expected base64 of {KEY_BYTES} bytes, got {len(key)}")
    return key


def instance_id(data_dir: Path) -> str:
    """Return this instance's random UUID, persisted in `data_dir/instance.id`."""
    path = data_dir / INSTANCE_FILE
    if not path.exists():
        _create_once(path, f"{uuid.uuid4()}\n".encode("ascii"), mode=0o644)
    try:
        return str(uuid.UUID(path.read_text(encoding="ascii").strip()))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SealError(f"{path}: not a valid instance id") from exc


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)  # built once: json.dumps with options builds an encoder per call


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes that the seal's hashes are computed over."""
    return _CANONICAL.encode(value).encode("ascii")


def _without_seal(public: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in public.items() if key != "secured"}


def _hashed_fields(record: Record) -> dict[str, Any]:
    return _without_seal(record_to_public(record))


def _hash_of(hashed: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(hashed)).hexdigest()


def _field_hashes_of(hashed: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: hashlib.sha256(canonical_json(value)).hexdigest()[:16] for key, value in hashed.items()
    }


def public_hash(record: Record) -> str:
    """sha256 hex of the canonical JSON of all public fields except `secured`."""
    return _hash_of(_hashed_fields(record))


def field_hashes(record: Record) -> dict[str, str]:
    """A short sha256 per public field (but `secured`), to name the field that differs."""
    return _field_hashes_of(_hashed_fields(record))


def _payload(
    record: Record, instance: str, digest: str, fields: Mapping[str, str]
) -> dict[str, Any]:
    fetched = record.provenance.fetched_at
    return {
        "v": SEAL_VERSION,
        "source": record.provenance.feed_url,
        "fetched": None if fetched is None else format_utc(fetched),
        "instance": instance,
        "hash": digest,
        "fields": fields,
    }


def seal_payload(record: Record, instance: str) -> dict[str, Any]:
    """The provenance and hashes that `seal_record` encrypts."""
    hashed = _hashed_fields(record)
    return _payload(record, instance, _hash_of(hashed), _field_hashes_of(hashed))


def _encoded_fields(hashed: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """The canonical JSON of each field, taken from `given` where it is there."""
    return {
        key: given[key] if key in given else _CANONICAL.encode(value)
        for key, value in hashed.items()
    }


def _document_of(hashed: Mapping[str, Any], given: Mapping[str, str]) -> bytes:
    """`canonical_json(hashed)`, with the fields in `given` already encoded.

    The keys run sorted: each run of keys between given ones is encoded as one mapping.
    """
    pieces: list[str] = []
    run: dict[str, Any] = {}
    for key in sorted(hashed):
        if key not in given:
            run[key] = hashed[key]
            continue
        if run:
            pieces.append(_CANONICAL.encode(run)[1:-1])
            run = {}
        pieces.append(f"{_CANONICAL.encode(key)}:{given[key]}")
    if run:
        pieces.append(_CANONICAL.encode(run)[1:-1])
    return f"{{{','.join(pieces)}}}".encode("ascii")


def _encrypt(aead: AESGCM, payload: Mapping[str, Any]) -> str:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return f"{_b64(aead.encrypt(nonce, canonical_json(payload), AAD))};{_b64(nonce)}"


def seal_record(record: Record, key: bytes, instance: str) -> str:
    """Return the `secured` value for `record`: ``base64(ciphertext);base64(nonce)``."""
    if len(key) != KEY_BYTES:
        raise SealError(f"the sealing key must be {KEY_BYTES} bytes")
    return _encrypt(AESGCM(key), seal_payload(record, instance))


class Sealer:
    """Checks and renews the seals of many records with one key (the exporters' path).

    `renewed` takes the record's public dict, computed once by the caller and shared with
    the renderers, so each record's public fields are built and hashed only once.
    """

    def __init__(self, key: bytes, instance: str) -> None:
        if len(key) != KEY_BYTES:
            raise SealError(f"the sealing key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self._instance = instance

    def renewed(
        self,
        record: Record,
        public: Mapping[str, Any],
        canonical: Mapping[str, str] | None = None,
    ) -> str | None:
        """None when `record.secured` still seals `public` (this key); else a fresh seal.

        `canonical` holds the `canonical_json` text of fields already encoded (by key),
        spliced into the document and the field hashes instead of encoding them again.
        """
        hashed = _without_seal(public)
        given = canonical or {}
        digest = hashlib.sha256(_document_of(hashed, given)).hexdigest()
        if record.secured and self._seals(record.secured, digest):
            return None
        fields = {
            key: hashlib.sha256(text.encode("ascii")).hexdigest()[:16]
            for key, text in _encoded_fields(hashed, given).items()
        }
        return _encrypt(self._aead, _payload(record, self._instance, digest, fields))

    def _seals(self, secured: str, digest: str) -> bool:
        try:
            payload = _open(secured, self._aead)
        except SealError:
            return False
        return bool(payload.get("hash") == digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def open_seal(secured: str, key: bytes) -> dict[str, Any]:
    """Decrypt a `secured` value; raises SealError when it is malformed or does not open."""
    return _open(secured, AESGCM(key))


def _open(secured: str, aead: AESGCM) -> dict[str, Any]:
    parts = secured.strip().split(";")
    if len(parts) != 2:
        raise SealError("malformed seal: expected 'ciphertext;nonce'")
    try:
        ciphertext, nonce = (base64.b64decode(part, validate=True) for part in parts)
        plain = aead.decrypt(nonce, ciphertext, AAD)
        payload = json.loads(plain.decode("utf-8"))
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError) as exc:
        raise SealError(WRONG_KEY) from exc
    if not isinstance(payload, dict) or payload.get("v") != SEAL_VERSION:
        raise SealError("unsupported seal version")
    return payload


def verify_record(record: Record, key: bytes) -> VerifyResult:
    """Check that `record`'s public fields are the ones that were sealed, and by this key."""
    if not record.secured:
        return VerifyResult(False, "not sealed")
    try:
        payload = open_seal(record.secured, key)
    except SealError as exc:
        return VerifyResult(False, str(exc))
    provenance = {name: payload.get(name) for name in ("source", "fetched", "instance")}
    if payload.get("hash") == public_hash(record):
        return VerifyResult(True, "ok", provenance=provenance)
    sealed_fields = payload.get("fields")
    sealed = sealed_fields if isinstance(sealed_fields, dict) else {}
    current = field_hashes(record)
    differing = tuple(name for name in current if sealed.get(name) != current[name])
    if differing:
        message = "altered since sealing: " + ", ".join(differing)
    else:
        message = "altered since sealing (field not identified)"
    return VerifyResult(False, message, differing, provenance)
