"""An Ed25519 signature of the archive manifest's head, so a rewrite of the whole chain
is caught too (a rewritten chain verifies link by link, but its head is not the signed one).

A run with `reports.archive_key` (a PEM private key: `openssl genpkey -algorithm ed25519`)
signs `{"head": <last entry's hash>, "seq": <its seq>}` into `<reports.dir>/manifest.sig`
after each append. `archive verify` with `reports.archive_public_key` (its PEM public key:
`openssl pkey -pubout`) requires that signature, valid, over the manifest's last entry.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from opscheck import writers

SIG = "manifest.sig"


class SignatureError(Exception):
    """A key that cannot be used; the text is one line."""


def _payload(seq: int, head: str) -> bytes:
    return json.dumps({"head": head, "seq": seq}, sort_keys=True, separators=(",", ":")).encode()


def _key(path: str, private: bool) -> Any:
    what = "reports.archive_key" if private else "reports.archive_public_key"
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise SignatureError(f"{what} {path}: {exc.strerror or exc}") from None
    try:
        key = load_pem_private_key(data, None) if private else load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{what} {path}: not a PEM key without passphrase ({exc})") from None
    wanted = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, wanted):
        raise SignatureError(f"{what} {path}: not an Ed25519 key")
    return key


def sign(reports: Path, entry: dict[str, Any], key_path: str) -> None:
    """Write the signature of `entry` (the new head) atomically; raises SignatureError."""
    key = _key(key_path, private=True)
    signature = key.sign(_payload(entry["seq"], entry["hash"]))
    doc = {
        "seq": entry["seq"],
        "head": entry["hash"],
        "ed25519": base64.b64encode(signature).decode(),
    }
    writers.write_atomic(reports / SIG, json.dumps(doc) + "\n")


def check(reports: Path, last: dict[str, Any] | None, public_key_path: str) -> str:
    """ "" when `manifest.sig` signs the manifest's last entry with the pinned key, else why."""
    key = _key(public_key_path, private=False)
    try:
        doc = json.loads((reports / SIG).read_text())
        signature = base64.b64decode(doc["ed25519"], validate=True)
        seq, head = int(doc["seq"]), str(doc["head"])
    except FileNotFoundError:
        return f"{SIG}: missing (reports.archive_public_key is set: the head must be signed)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{SIG}: unreadable or malformed"
    try:
        key.verify(signature, _payload(seq, head))
    except InvalidSignature:
        return f"{SIG}: the signature does not verify with reports.archive_public_key"
    if last is None or last.get("hash") != head or last.get("seq") != seq:
        ends = f"{str(last.get('hash'))[:12]} (seq {last.get('seq')})" if last else "no entry"
        return (
            f"{SIG}: signs the head {head[:12]} (seq {seq}), but the manifest ends at {ends}: "
            "the chain was rewritten, or an append was not signed"
        )
    return ""
