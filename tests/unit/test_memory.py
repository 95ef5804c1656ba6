"""harvester.util.memory: fewer malloc arenas, unless the environment says otherwise."""

from __future__ import annotations

import sys

import pytest

from harvester.util.memory import limit_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_arena_limit_is_set_on_glibc() -> None:
    assert limit_malloc_arenas() is True


def test_malloc_arena_max_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False
