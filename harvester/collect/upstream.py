"""Upstream builds' causes for the ``user_id`` walk, fetched once per cycle however
many downstream builds name them."""

from __future__ import annotations

import threading

from pydantic import ValidationError

from harvester.errors import JenkinsMalformedResponse
from harvester.jenkins.client import JenkinsClient
from harvester.jenkins.models import CausesOnly


class UpstreamCache:
    """Upstream builds' causes, fetched once per cycle."""

    def __init__(self, jenkins: JenkinsClient) -> None:
        self._jenkins = jenkins
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], CausesOnly | None] = {}
        self._inflight: dict[tuple[str, int], threading.Event] = {}

    def causes(self, project: str, number: int) -> CausesOnly | None:
        key = (project, number)
        while True:
            with self._lock:
                if key in self._known:
                    return self._known[key]
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()  # another worker is fetching the same upstream build
        try:
            data = self._jenkins.build_causes(project, number)
            try:
                causes = None if data is None else CausesOnly.model_validate(data)
            except ValidationError:
                raise JenkinsMalformedResponse(
                    "upstream build JSON does not validate", job=project, build=number
                ) from None
            with self._lock:
                self._known[key] = causes  # validated once, however many builds it started
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()
        return causes
