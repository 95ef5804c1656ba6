"""Credentials inside URLs (``https://user:pass@host/``, a PostgreSQL password, a
``?password=`` parameter): masked wherever a URL is printed or logged."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@  The password runs to the *last* '@' of the URL: generated passwords
# hold '/', '?', '#' and '@' too, and a URL parser would stop at the first of them and show the
# rest. Where an '@' stands later in the path, more is masked than needed: never less.
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):\S*@")
# password=..., as a URL's query parameter or a libpq keyword (sslpassword, token, api_key...).
_PARAMETER = re.compile(
    r"(?i)(?P<key>\b(?:ssl)?(?:password|passwd|pwd|secret|token|api_?key|access_?token)=)"
    r"[^&;\s#'\"]*"
)


def mask(url: str) -> str:
    """``https://user:***@host/``: the user kept (it helps), the password never."""
    masked = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _PARAMETER.sub(lambda m: f"{m['key']}***", masked) if "=" in masked else masked


def scrub(text: str) -> str:
    """``text`` with every URL's password masked (error messages, log lines)."""
    return mask(text) if "@" in text or "=" in text else text


def without_userinfo(url: str) -> str:
    """The URL with no user or password at all (``instance_url`` is sent to SEI)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
