"""Members' emails: kept as a keyed hash to find a member by (`LoyaltyService._hash`), and
sealed (AES-GCM, with a key derived from the mesh secret) with a masked form beside it, so
that customer service sees `a***@example.com` and reads the whole address only when it asks,
which it records. The database alone never gives an address away."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["EmailVault", "mask_email"]

_NONCE = 12


def mask_email(email: str) -> str:
    """`alice@example.com` → `a***@example.com`: enough to recognise, not to write to."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class EmailVault:
    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"loyalty-email:" + secret).digest())

    def seal(self, email: str, member_id: str) -> bytes:
        """Sealed to its member: a sealed address copied onto another member does not open."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, email.encode(), member_id.encode())

    def open(self, sealed: bytes, member_id: str) -> str:
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], member_id.encode()).decode()
