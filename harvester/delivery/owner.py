"""Who holds a claim on a ledger row, and whether that holder may still be sending."""

from __future__ import annotations

import os
import socket
import uuid


def claim_owner() -> str:
    """Who holds a claim on a ledger row: one deliverer of this process on this host
    (``host:pid:id``; the id tells two deliverers of one process apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim_owner_alive(owner: str) -> bool:
    """Whether a claim's owner may still be sending. Only a process on this host can be checked;
    any other owner (another replica) is assumed alive and its claim left to expire. A reused
    pid makes a dead owner look alive: its rows then wait out the lease, nothing worse."""
    host, _, rest = owner.partition(":")  # host:pid (before 0.2) or host:pid:id
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
