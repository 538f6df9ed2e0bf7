"""Bearer tokens in URLs (share links, the podcast feed): long, random, and never stored as they are.

A row keeps a random nonce and the SHA-256 of the token; the token itself is an HMAC of the nonce under a
key derived from SECRET_KEY. So the database alone gives no working URL (a leaked dump cannot play anything),
while the server can show its owner the same address again (a podcast feed is added to a phone long after
it was made). A new nonce is a new token, and the old one stops working at once. Changing SECRET_KEY
changes every such address.
"""

import base64
import hashlib
import hmac
import secrets

from django.utils.crypto import salted_hmac

# 32 random bytes: a nonce as stored (hex) and, through the HMAC, a token of 256 bits.
NONCE_BYTES = 32


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def _urlsafe(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def derived_token(*, purpose: str, nonce: str) -> str:
    """The URL token of a nonce: 43 URL-safe characters. `purpose` keeps one kind of token from another."""
    return _urlsafe(salted_hmac(f"videomp3.tokens.{purpose}", nonce, algorithm="sha256").digest())


def token_digest(token: str) -> str:
    """What is stored and looked up: the token's SHA-256 (a token has 256 bits, so no slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def derived_item_token(*, purpose: str, nonce: str, item: str) -> str:
    """A token for one item under a nonce (an enclosure of the feed): a new nonce voids every item token."""
    return _urlsafe(salted_hmac(f"videomp3.tokens.{purpose}.item", f"{nonce}:{item}", algorithm="sha256").digest())


def tokens_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# A token in a URL is exactly this: URL-safe base64 of 32 bytes, unpadded.
TOKEN_PATTERN = r"[A-Za-z0-9_-]{43}"  # noqa: S105 - a shape, not a secret
