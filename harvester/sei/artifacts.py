"""``artifacts``, pure: the entries of the artifact manifests a build archived
(``artifact-manifest.json``, then ``sei-artifacts.json``, the files the SEI Jenkins plugin reads:
container images with their registry location, name, tag and digest, which is how SEI correlates
CI and CD builds), then one ``type: file`` entry per other archived artifact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harvester.jenkins.models import Build
from harvester.sei.jobref import JobRef
from harvester.sei.payload import ArtifactRef
from harvester.util import names

MANIFEST_FILES = ("artifact-manifest.json", "sei-artifacts.json")
REQUIRED_KEYS = ("type", "location", "name", "qualifier")


def manifests_of(build: Build) -> list[str]:
    """The manifest files a build archived at the top of its artifacts, in reading order."""
    archived = {artifact.relativePath for artifact in build.artifacts}
    return [name for name in MANIFEST_FILES if name in archived]


@dataclass
class ManifestEntries:
    """What a build's manifests hold: the artifacts, and why any entry was left out."""

    artifacts: list[ArtifactRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        text = str(value)
        return text if text else None
    return None


def _entry(raw: Any) -> tuple[ArtifactRef | None, str | None]:
    if not isinstance(raw, dict):
        return None, "an entry is not an object"
    values = {key: _text(raw.get(key)) for key in REQUIRED_KEYS}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        return None, f"an entry lacks {', '.join(missing)}"
    flags: dict[str, bool] = {}
    for key, default in (("input", False), ("output", True)):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            return None, f"an entry's {key} is not true or false"
        flags[key] = value
    entry = ArtifactRef(
        input=flags["input"],
        output=flags["output"],
        type=values["type"] or "",
        location=values["location"] or "",
        name=values["name"] or "",
        qualifier=values["qualifier"] or "",
    )
    digest = raw.get("hash")
    if isinstance(digest, str) and digest:
        entry["hash"] = digest
    metadata = raw.get("metadata")
    if isinstance(metadata, dict) and metadata:
        entry["metadata"] = {str(k): str(v) for k, v in metadata.items()}
    return entry, None


def manifest_entries(documents: Sequence[tuple[str, Any]]) -> ManifestEntries:
    """The artifacts of parsed manifests, given as (file name, JSON) in reading order. A manifest
    is ``{"artifacts": [...]}``, ``{"artifact": {...}}`` or one artifact object."""
    found = ManifestEntries()
    for file_name, document in documents:
        if isinstance(document, dict) and isinstance(document.get("artifacts"), list):
            raws: list[Any] = document["artifacts"]
        elif isinstance(document, dict) and "artifact" in document:
            raws = [document["artifact"]]
        else:
            raws = [document]
        for raw in raws:
            entry, problem = _entry(raw)
            if entry is not None:
                found.artifacts.append(entry)
            else:
                found.problems.append(f"{file_name}: {problem}")
    return found


def file_artifacts(job: JobRef, build: Build, instance_url: str) -> list[ArtifactRef]:
    """One ``type: file`` entry per archived artifact but the manifests themselves."""
    base = f"{instance_url}{names.job_path(job.full_name)}{build.number}/artifact/"
    return [
        ArtifactRef(
            input=False,
            output=True,
            type="file",
            location=base + names.artifact_path(artifact.relativePath),
            name=artifact.relativePath,
            qualifier=str(build.number),
        )
        for artifact in build.artifacts
        if artifact.relativePath and artifact.relativePath not in MANIFEST_FILES
    ]
