"""Who may call: write keys for ingestion (Segment's three ways), and the admin credential."""

from __future__ import annotations

import base64
import hmac
from typing import Any

from nurture.runtime.settings import settings


def secret_write_keys() -> frozenset[str]:
    """Write keys from Secrets Manager (`{"write_keys": [...]}`), cached for five minutes."""
    name = settings().write_keys_secret
    if not name:
        return frozenset()
    from aws_lambda_powertools.utilities import parameters  # imports boto3: at the first request, not at import

    secret: Any = parameters.get_secret(name, transform="json", max_age=300)
    return frozenset(secret.get("write_keys", []))


def write_key_of(headers: dict[str, str], body: Any) -> str | None:
    """Segment's three ways: HTTP basic user, the X-Write-Key header, or `writeKey` in the body (sendBeacon)."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            return base64.b64decode(authorization[6:]).decode().split(":", 1)[0]
        except ValueError:
            return None
    if headers.get("x-write-key"):
        return headers["x-write-key"]
    return body.get("writeKey") if isinstance(body, dict) and isinstance(body.get("writeKey"), str) else None


def same_secret(given: str, secret: str) -> bool:
    """Constant-time comparison; as bytes, because `compare_digest` refuses non-ASCII str (a 500, not a 401).
    `surrogatepass`: a key from a JSON body may hold a lone surrogate (`"\\ud800"`), which plain UTF-8 refuses."""
    return hmac.compare_digest(given.encode(errors="surrogatepass"), secret.encode(errors="surrogatepass"))


def known_write_key(key: str | None, keys: frozenset[str]) -> bool:
    return key is not None and any(same_secret(key, known) for known in keys)
