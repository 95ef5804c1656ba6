"""The process's memory: fewer glibc malloc arenas.

glibc gives threads that allocate at the same time arenas of their own, up to 8 per core. The
harvester's dozen threads pass payloads to each other, so freed memory stays spread over many
half-used arenas and the peak RSS grows with the builds handled: 127 MB after a 50,000-build
catch-up, 107 MB with two arenas, at the same CPU (bench/RESULTS.md). MALLOC_ARENA_MAX in the
environment, when set, wins; elsewhere than glibc this does nothing."""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Call before threads start; returns whether the limit was set."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl (Alpine) or no libc by that name
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
