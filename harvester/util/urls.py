"""Credentials inside URLs (``https://user:pass@host/``, a PostgreSQL password): masked wherever a
URL is printed, logged or sent (CONTRACT §3)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@  (the password is anything up to the last '@' before the host)
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^/\s]*@")


def mask(url: str) -> str:
    """``https://user:***@host/``: the user kept (it helps), the password never."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


def scrub(text: str) -> str:
    """``text`` with every URL's password masked (error messages, log lines)."""
    return mask(text) if "@" in text else text


def without_userinfo(url: str) -> str:
    """The URL with no user or password at all (``instance_url`` is sent to SEI)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
