"""Discovery: which buildable jobs a controller has, read from one ``tree=`` answer (pure).

One request returns the first FOLDER_LEVELS levels of folders, multibranch projects and
organization folders; a container deeper than that is listed for one more request of its own
(:meth:`harvester.jenkins.client.JenkinsClient.discover` does the asking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harvester.errors import JenkinsMalformedResponse

FOLDER_LEVELS = 5
"""Levels of nested folders fetched in the one discovery request; deeper trees take more requests."""

_JOB_FIELDS = "_class,name,lastBuild[number],lastCompletedBuild[number]"

# A container still to read: its full name, and the classes of the containers down to it.
Container = tuple[str | None, tuple[str | None, ...]]
"""A container still to be asked about: (full name, class); (None, None) is the root."""


def discovery_tree(levels: int = FOLDER_LEVELS) -> str:
    spec = _JOB_FIELDS
    for _ in range(levels - 1):
        spec = f"{_JOB_FIELDS},jobs[{spec}]"
    return f"jobs[{spec}]"


@dataclass(frozen=True, slots=True)
class DiscoveredJob:
    """A buildable job found by discovery."""

    full_name: str
    class_name: str | None
    last_build: int | None
    last_completed_build: int | None
    parent_class: str | None
    parent_full_name: str | None
    containers: tuple[str | None, ...] = ()
    """The classes of the containers above it, outermost first (the plugin's identities)."""

    @property
    def is_pipeline(self) -> bool:
        return (self.class_name or "").endswith("WorkflowJob")

    @property
    def multibranch_project(self) -> str | None:
        """The project's full name when this job is a branch of a multibranch project."""
        if "MultiBranchProject" in (self.parent_class or ""):
            return self.parent_full_name
        return None


def walk(
    data: Any,
    parent: str | None,
    containers: tuple[str | None, ...],
    found: list[DiscoveredJob],
    pending: list[Container],
    level: int = 1,
) -> None:
    """Add the buildable jobs of one discovery answer to ``found`` and the containers it could not
    reach to ``pending``. ``containers``: the classes of ``parent`` and the containers above it."""
    if not isinstance(data, dict):
        raise JenkinsMalformedResponse("job list is not a JSON object", job=parent)
    for item in data.get("jobs") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        full_name = item["name"] if parent is None else f"{parent}/{item['name']}"
        class_name = item.get("_class")
        if "jobs" in item:  # a container: folder, multibranch project, organization folder
            walk(item, full_name, (*containers, class_name), found, pending, level + 1)
        elif "lastBuild" in item:  # only buildable jobs export lastBuild (null if never built)
            found.append(
                DiscoveredJob(
                    full_name=full_name,
                    class_name=class_name,
                    last_build=_number(item.get("lastBuild")),
                    last_completed_build=_number(item.get("lastCompletedBuild")),
                    parent_class=containers[-1] if containers else None,
                    parent_full_name=parent,
                    containers=containers,
                )
            )
        elif level >= FOLDER_LEVELS:
            pending.append((full_name, (*containers, class_name)))  # deeper than one request


def _number(value: Any) -> int | None:
    if isinstance(value, dict) and isinstance(value.get("number"), int):
        return int(value["number"])
    return None
