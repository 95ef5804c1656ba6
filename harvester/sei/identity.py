"""The SEI Jenkins plugin's job identities, pure: the job's directory under ``$JENKINS_HOME/jobs``
(branch-api's NameMangler for branches and organization folders' repositories) and the names the
plugin derives from it (``mapping.job_identity: plugin``)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harvester.sei.payload import Payload, Trigger
from harvester.util.names import decoded

MAX_SAFE_LENGTH = 32
MIN_HASH_LENGTH = 6
MAX_HASH_LENGTH = 12
_RESERVED = {
    ".",
    "..",
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{n}" for n in range(1, 10)),
    *(f"lpt{n}" for n in range(1, 10)),
}
_SEPARATORS = "/\\ ._"


def _safe(unit: int) -> bool:
    return (
        ord("a") <= unit <= ord("z")
        or ord("A") <= unit <= ord("Z")
        or ord("0") <= unit <= ord("9")
        or unit == ord("-")
    )


def _digest(name: str) -> str:
    """SHA-1 of the UTF-8 name in base 32 (0-9a-v), five bits at a time from the low end of each
    byte, the last partial group dropped: branch-api's own digest, whatever its quirks."""
    out: list[str] = []
    bits = data = 0
    for byte in hashlib.sha1(name.encode(), usedforsecurity=False).digest():
        while bits >= 5:
            digit = data & 0x1F
            out.append(chr(ord("0") + digit) if digit < 10 else chr(ord("a") + digit - 10))
            bits -= 5
            data >>= 5
        data |= byte << bits
        bits += 8
    return "".join(out)


def mangle(name: str) -> str:
    """branch-api's ``NameMangler.apply``: a name that is safe on every file system stays; any
    other is rewritten (separators as ``-``, other characters as ``_`` and hex) with a hash."""
    # Java walks UTF-16 code units: a character outside the BMP counts twice, as there.
    encoded = name.encode("utf-16-le")
    units = [int.from_bytes(encoded[i : i + 2], "little") for i in range(0, len(encoded), 2)]
    if (
        len(units) <= MAX_SAFE_LENGTH
        and units
        and units[0] != ord("-")
        and all(_safe(unit) for unit in units)
        and name.lower() not in _RESERVED
        and not name.endswith(".")
    ):
        return name
    if not units:
        return name  # an empty name has no directory to be in; never asked for
    buf: list[str] = []
    for unit in units:
        if _safe(unit):
            buf.append(chr(unit))
        elif chr(unit) in _SEPARATORS:
            buf.append("0-" if not buf else "-")
        else:
            buf.append("0_" if not buf else "_")
            # Above 0xFF, the high byte first: what branch-api's published vectors hold.
            if unit > 0xFF:
                buf.append(f"{unit >> 8:02x}_")
            buf.append(f"{unit & 0xFF:02x}")
    text = "".join(buf)
    digest = _digest(name)
    if len(text) <= MAX_SAFE_LENGTH - MIN_HASH_LENGTH - 1:
        return f"{text}.{digest[-MIN_HASH_LENGTH:]}"
    overage = len(text) - MAX_SAFE_LENGTH
    size = min(max(overage, MIN_HASH_LENGTH), MAX_HASH_LENGTH)
    mark = f".{digest[-size:]}."
    start = (MAX_SAFE_LENGTH - len(mark)) // 2
    return text[:start] + mark + text[start + len(mark) + overage :]


@dataclass(frozen=True, slots=True)
class PluginIdentity:
    """A job as the plugin names it."""

    full_name: str
    """``job_full_name``: the directory path (``a/jobs/mbp/branches/feature-login.x1y2z3``)."""
    normalized: str
    """``job_normalized_full_name`` / ``qualified_name``: without jobs/branches/modules."""
    job_name: str
    """``job_name`` / ``pipeline``."""
    branch_name: str | None


_PATTERNS = (
    re.compile(r"^.*/jobs/(.*)/branches/(.*)$"),
    re.compile(r"^(.*)/branches/(.*)$"),
    re.compile(r"^.*/jobs/(.*)$"),
)


def plugin_path(full_name: str, containers: Sequence[str | None]) -> str:
    """The job's directory under ``$JENKINS_HOME/jobs``, from its REST full name and the classes
    of the containers above it, outermost first (one fewer than the name's segments; a missing
    one is taken for a plain folder)."""
    parts = full_name.split("/")
    path = [parts[0]]
    for index, part in enumerate(parts[1:]):
        container = (containers[index] if index < len(containers) else None) or ""
        if "MultiBranchProject" in container:
            path += ["branches", mangle(decoded(part))]
        elif "OrganizationFolder" in container:
            path += ["jobs", mangle(decoded(part))]
        else:
            path += ["jobs", part]
    return "/".join(path)


def plugin_identity(full_name: str, containers: Sequence[str | None]) -> PluginIdentity:
    path = plugin_path(full_name, containers)
    kept = [p for p in path.split("/") if p.lower() not in ("jobs", "branches", "modules")]
    job, branch = path, None
    for pattern in _PATTERNS:
        found = pattern.match(path)
        if found:
            job = found.group(1)
            branch = found.group(2) if pattern.groups == 2 else None
            break
    return PluginIdentity(path, "/".join(kept) if "/" in path else path, job, branch)


def with_plugin_identity(
    payload: Payload,
    full_name: str,
    upstream_projects: Sequence[str],
    containers_of: Callable[[str], Sequence[str | None]],
) -> Payload:
    """``payload`` with the plugin's names: the job's own, and its upstream jobs' in
    ``trigger_chain``. ``upstream_projects``: the REST names of the build's upstream causes, in
    their order (the chain holds them decoded); ``containers_of``: the classes of the containers
    above a job, outermost first, from this cycle's discovery (a job it does not know is taken as
    in plain folders)."""
    identity = plugin_identity(full_name, containers_of(full_name))
    renamed = Payload(**payload)
    renamed["pipeline"] = identity.job_name
    renamed["job_full_name"] = identity.full_name
    renamed["qualified_name"] = identity.normalized
    if identity.branch_name is not None:
        renamed["branch_name"] = identity.branch_name
    triggers = payload.get("trigger_chain")
    if triggers:
        upstream = iter(upstream_projects)
        chain = []
        for trigger in triggers:
            renamed_trigger = Trigger(**trigger)
            if trigger["type"].endswith("UpstreamCause"):
                project = next(upstream, None)
                if project is not None:
                    renamed_trigger["id"] = plugin_path(project, containers_of(project))
            chain.append(renamed_trigger)
        renamed["trigger_chain"] = chain
    return renamed
