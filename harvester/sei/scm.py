"""Where a build's code came from (``scm_commit_ids``, ``repo_url``, ``branch_name``;
§4a the project's ``BuildData``), pure.

Builds that load a Pipeline shared library carry the library's checkout as a git ``BuildData`` too,
usually before the project's own; SEI links builds to repositories by ``repo_url``, so the library's
must never be taken for the project's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from harvester.jenkins.models import Build, BuildData
from harvester.sei.jobref import JobRef
from harvester.util import names

BRANCH_PREFIXES = ("refs/heads/", "origin/")
SEI_COMMITS_PARAMETER = "SEI_SCM_COMMIT_IDS"
MAX_PARAMETER_COMMITS = 100
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{40}")
_SEPARATORS = re.compile(r"[,;\s]+")


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def strip_branch_prefix(name: str) -> str:
    for prefix in ("refs/remotes/", "remotes/"):
        if name.startswith(prefix):
            # refs/remotes/<remote>/<branch>: drop the remote's name too
            rest = name[len(prefix) :]
            return rest.split("/", 1)[1] if "/" in rest else rest
    for prefix in BRANCH_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def multibranch_branch(job: JobRef) -> str | None:
    """The decoded branch name of a branch job of a multibranch project."""
    if job.multibranch_project is None:
        return None
    return names.decoded(names.segments(job.full_name)[-1])


def is_library(data: BuildData, library_remotes: Sequence[str]) -> bool:
    """A checkout of a Pipeline shared library: one of its remotes matches
    ``mapping.library_remotes`` (globs, case-insensitive)."""
    return any(
        fnmatchcase(url.lower(), pattern.lower())
        for url in data.remoteUrls
        for pattern in library_remotes
    )


def _branches(data: BuildData) -> list[str]:
    revision = data.lastBuiltRevision
    if revision is None:
        return []
    return [strip_branch_prefix(spec.name) for spec in revision.branch if spec.name]


def project_build_data(
    job: JobRef, build: Build, library_remotes: Sequence[str]
) -> BuildData | None:
    """The project's own git ``BuildData``: among those that are not a library's
    (among all when every one is), for a multibranch branch the first whose branch is that
    branch, else the first."""
    every = build.build_data
    if not every:
        return None
    candidates = [d for d in every if not is_library(d, library_remotes)] or every
    branch = multibranch_branch(job)
    if branch is not None:
        for data in candidates:
            if branch in _branches(data):
                return data
    return candidates[0]


def parameter_commit_ids(build: Build) -> list[str]:
    """The ids in the ``SEI_SCM_COMMIT_IDS`` parameter, as the SEI Jenkins plugin reads them:
    split on commas, semicolons and whitespace, only full 40-hex ids, de-duplicated, at most 100."""
    for parameter in build.parameters:
        if parameter.name == SEI_COMMITS_PARAMETER and isinstance(parameter.value, str):
            ids = [
                part for part in _SEPARATORS.split(parameter.value) if _COMMIT_ID.fullmatch(part)
            ]
            return _unique(ids)[:MAX_PARAMETER_COMMITS]
    return []


def commit_ids(build: Build, project: BuildData | None) -> list[str]:
    """The change sets' commits; else the ``SEI_SCM_COMMIT_IDS`` parameter's; else the project's
    last built revision."""
    change_sets = [*build.changeSets, *([build.changeSet] if build.changeSet else [])]
    ids = _unique(item.commitId for cs in change_sets for item in cs.items if item.commitId)
    if ids:
        return ids
    ids = parameter_commit_ids(build)
    if ids:
        return ids
    if project is not None and project.lastBuiltRevision and project.lastBuiltRevision.SHA1:
        return [project.lastBuiltRevision.SHA1]
    return []


def branch_name(job: JobRef, project: BuildData | None) -> str | None:
    branch = multibranch_branch(job)
    if branch is not None:
        return branch
    branches = _branches(project) if project is not None else []
    return branches[0] if branches else None


def repo_url(project: BuildData | None) -> str | None:
    return project.remoteUrls[0] if project is not None and project.remoteUrls else None
