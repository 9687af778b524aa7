"""Users of the gateway's API and their roles; passwords hashed with scrypt (RFC 7914).

Roles, each including the one before:

- ``viewer``: reads documents, recommendations, the ledger, dead letters;
- ``planner``: also approves or rejects recommendations and plans maintenance windows;
- ``administrator``: also changes approval modes, replays dead letters and manages users.

A hash is stored as ``scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>``, so the cost can rise later
without invalidating stored hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ROLES = ("viewer", "planner", "administrator")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 10


def allows(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may.

    >>> allows("administrator", "planner"), allows("viewer", "planner")
    (True, False)
    """
    return ROLES.index(role) >= ROLES.index(needed)


def check_password_strength(password: str) -> None:
    """Refuse a password too short to stand a guessing attack (:class:`ValueError`)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``password``."""
    salt = salt if salt is not None else os.urandom(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES, maxmem=64 * 2**20
    )
    encode = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt).decode()}${encode(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time in the comparison; False for a garbled hash)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 2**20,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
