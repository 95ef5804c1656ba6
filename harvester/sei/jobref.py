"""A job as the mapping sees it."""

from __future__ import annotations

from dataclasses import dataclass

from harvester.util import names


@dataclass(frozen=True, slots=True)
class JobRef:
    """A job as discovery found it. ``full_name`` is the Jenkins full name (encoded segments);
    ``multibranch_project`` is the parent project's full name when this is a branch job."""

    full_name: str
    multibranch_project: str | None = None
    is_pipeline: bool = False

    @property
    def decoded_name(self) -> str:
        return names.decoded(self.full_name)
