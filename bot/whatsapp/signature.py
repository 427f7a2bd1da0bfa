"""X-Hub-Signature-256: HMAC-SHA256 of the raw body under the app secret, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(app_secret: str, raw_body: bytes) -> str:
    """The header value Meta would send for this body (used by tests and the README example)."""
    return _PREFIX + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def is_valid(app_secret: str, raw_body: bytes, header_values: Sequence[str]) -> bool:
    """Check the signature over the exact received bytes, before any parsing. `header_values` holds every
    copy of the header the request carries: exactly one is allowed, since a second goes unchecked."""
    if len(header_values) != 1:
        return False
    header_value = header_values[0]
    if not header_value.startswith(_PREFIX):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header_value.removeprefix(_PREFIX))
