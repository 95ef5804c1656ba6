"""Which live replica collects a job (CONTRACT §7): rendezvous (highest-random-weight) hashing.
Pure: every replica computes the same answer from the same list of live replicas, with no
coordination, and when one joins or dies only the jobs it wins or held move."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _weight(replica: str, job: str) -> bytes:
    return hashlib.blake2b(f"{replica}\0{job}".encode(), digest_size=8).digest()


def owner_of(job: str, replicas: Sequence[str]) -> str:
    """The replica among ``replicas`` (not empty) that collects ``job``."""
    return max(replicas, key=lambda replica: _weight(replica, job))
