"""A registered process is seen dead at once when it ran where this one runs and is gone
(harvester.ledger.replicas.process_gone); anywhere else only heartbeats tell."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harvester.ledger.replicas import process_gone, process_identity

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_process_gone_from_this_host_is_seen_at_once() -> None:
    here = process_identity()
    child = subprocess.Popen(["sleep", "30"])
    try:
        identity = process_identity(child.pid)
        assert not process_gone(identity, here)
    finally:
        child.kill()
        child.wait()
    assert process_gone(identity, here)
    assert not process_gone(here, here)
    # Another boot (another host) or another pid namespace (another container): not ours to say.
    _, namespace, pid, started = identity.split("/", 3)
    assert not process_gone(f"another-boot/{namespace}/{pid}/{started}", here)
    assert not process_gone(identity.replace(namespace, "pid:[1]"), here)
    assert not process_gone("host:123:abc", here)  # an owner from before the registry
