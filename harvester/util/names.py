"""Jenkins job names: full names, URL-encoded segments, URL paths, and the include/exclude globs.

Jenkins' *full name* joins item names with ``/``. Branch jobs of multibranch projects have names
that Jenkins itself URL-encodes (``feature%2Fx``), so a full name is a list of segments, each possibly
percent-encoded; the *decoded* form (``mbp/feature/x``) is what humans and the payload use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, unquote


def segments(full_name: str) -> list[str]:
    return full_name.split("/")


def decoded(full_name: str) -> str:
    """``mbp/feature%2Fx`` → ``mbp/feature/x`` (each segment URL-decoded)."""
    return "/".join(unquote(segment) for segment in segments(full_name))


def job_path(full_name: str) -> str:
    """The URL path of a job as Jenkins builds it: ``job/<segment>/`` per segment, each
    percent-encoded, so ``feature%2Fx`` becomes ``feature%252Fx``."""
    return "".join(f"job/{quote(segment, safe='')}/" for segment in segments(full_name))


def artifact_path(relative_path: str) -> str:
    return "/".join(quote(part, safe="") for part in relative_path.split("/"))


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # '**/' matches zero or more whole segments
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(pattern: str, full_name: str) -> bool:
    """``*`` stops at ``/``, ``**`` crosses it. A name matches in its Jenkins form or decoded."""
    regex = _glob_regex(pattern)
    return bool(regex.match(full_name) or regex.match(decoded(full_name)))


def matches_any(patterns: Iterable[str], full_name: str) -> bool:
    return any(glob_match(pattern, full_name) for pattern in patterns)


def selected(full_name: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    return matches_any(include, full_name) and not matches_any(exclude, full_name)
