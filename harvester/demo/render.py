"""The simulator's JSON: jobs, builds and ``wfapi`` describes in the shapes real controllers send
(``_class`` everywhere, empty ``{}`` actions, ``url`` fields from the configured root URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from harvester.demo.model import BUILD_CLASS, EMPTY_CHANGE_SET, PIPELINE, SimBuild, SimJob
from harvester.demo.tree import TreeSpec


class JenkinsJson:
    """Renders the model; the simulator serves what it renders."""

    @property
    def root_url(self) -> str:
        raise NotImplementedError

    # -- JSON ---------------------------------------------------------------------------------------

    def job_json(self, job: SimJob, full: list[str], spec: TreeSpec | None) -> dict[str, Any]:
        """A job's JSON; with a tree spec, only what it asks for is computed (then filtered)."""

        def wanted(name: str) -> bool:
            return spec is None or name in spec.fields

        url = self.root_url + "".join(f"job/{quote(p, safe='')}/" for p in full)
        data: dict[str, Any] = {
            "_class": job.kind,
            "actions": [{}, {"_class": "com.cloudbees.plugins.credentials.ViewCredentialsAction"}],
            "description": None,
            "displayName": unquote(job.name),
            "fullName": "/".join(full),
            "name": job.name,
            "url": url,
        }
        if job.is_container:
            if wanted("jobs"):
                sub = spec.fields["jobs"] if spec is not None else None
                data["jobs"] = [
                    self._child(child, [*full, child.name], sub) for child in job.children
                ]
            return data
        builds = sorted(job.builds, key=lambda b: b.number, reverse=True)
        completed = [b for b in builds if not b.in_progress]
        data.update(
            {
                "buildable": True,
                "color": "blue" if not builds or not builds[0].in_progress else "blue_anime",
                "firstBuild": self._ref(builds[-1], url) if builds else None,
                "lastBuild": self._ref(builds[0], url) if builds else None,
                "lastCompletedBuild": self._ref(completed[0], url) if completed else None,
                "nextBuildNumber": (builds[0].number + 1) if builds else 1,
                "inQueue": False,
            }
        )
        # Ranges ({M,N}) are applied by apply_tree afterwards.
        if wanted("builds"):  # capped at 100, as Jenkins does
            data["builds"] = [self.build_json(job, full, b) for b in builds[:100]]
        if spec is not None and "allBuilds" in spec.fields:  # only when asked for by name
            data["allBuilds"] = [self.build_json(job, full, b) for b in builds]
        return data

    def _child(self, job: SimJob, full: list[str], spec: TreeSpec | None) -> dict[str, Any]:
        if spec is None:  # without a tree, nested items are summaries, as in Jenkins
            url = self.root_url + "".join(f"job/{quote(p, safe='')}/" for p in full)
            return {"_class": job.kind, "name": job.name, "url": url, "color": "blue"}
        return self.job_json(job, full, spec)

    @staticmethod
    def _ref(build: SimBuild, job_url: str) -> dict[str, Any]:
        return {
            "_class": "hudson.model.Run",
            "number": build.number,
            "url": f"{job_url}{build.number}/",
        }

    def build_json(self, job: SimJob, full: list[str], build: SimBuild) -> dict[str, Any]:
        url = (
            self.root_url + "".join(f"job/{quote(p, safe='')}/" for p in full) + f"{build.number}/"
        )
        actions: list[dict[str, Any]] = []
        if build.causes:
            actions.append({"_class": "hudson.model.CauseAction", "causes": build.causes})
        if build.parameters:
            actions.append(
                {"_class": "hudson.model.ParametersAction", "parameters": build.parameters}
            )
        actions.append({})
        for url, sha, branch in build.libraries:
            actions.append(_build_data(build.number, url, sha, branch))
        if build.repo_url or build.commits:
            sha = build.commits[-1] if build.commits else "0" * 40
            actions.append(_build_data(build.number, build.repo_url, sha, build.branch or "main"))
        if build.tests is not None:
            actions.append(
                {
                    "_class": "hudson.tasks.junit.TestResultAction",
                    "urlName": "testReport",
                    "failCount": sum(
                        c.get("status") in ("FAILED", "REGRESSION")
                        for s in build.tests.get("suites", [])
                        for c in s.get("cases", [])
                    ),
                }
            )
        actions.extend(build.extra_actions)
        actions.append({"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"})
        items = [
            {
                "_class": "hudson.plugins.git.GitChangeSet",
                "commitId": c,
                "msg": f"commit {c[:7]}",
                "affectedPaths": ["README.md"],
            }
            for c in build.commits
        ]
        change_set = {
            "_class": "hudson.plugins.git.GitChangeSetList",
            "items": items,
            "kind": "git",
        }
        data: dict[str, Any] = {
            "_class": BUILD_CLASS.get(job.kind, "hudson.model.FreeStyleBuild"),
            "actions": actions,
            "artifacts": [
                {
                    "displayPath": a.rsplit("/", 1)[-1],
                    "fileName": a.rsplit("/", 1)[-1],
                    "relativePath": a,
                }
                for a in build.artifacts
            ],
            "building": build.in_progress if build.building is None else build.building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": 0 if build.in_progress else build.duration,
            "estimatedDuration": build.duration,
            "fullDisplayName": f"{' » '.join(unquote(p) for p in full)} #{build.number}",
            "id": str(build.number),
            "inProgress": build.in_progress,
            "keepLog": False,
            "number": build.number,
            "queueId": build.number * 7,
            # A Pipeline can have its result (and building false) while still inProgress.
            "result": build.result if not build.in_progress or build.building is False else None,
            "timestamp": build.timestamp,
            "url": url,
        }
        data.update(build.broken)
        if job.kind == PIPELINE:
            data["changeSets"] = [change_set] if items else []
        else:
            data["changeSet"] = change_set if items else EMPTY_CHANGE_SET
            data["builtOn"] = ""
        return data

    def stage_json(self, full: list[str], build: SimBuild, node_id: str) -> dict[str, Any] | None:
        """``execution/node/<id>/wfapi/describe`` of a stage: the stage with its steps."""
        stages = self.wfapi_json(full, build, full_stages=True)["stages"]
        return next((s for s in stages if s["id"] == node_id), None)

    def wfapi_json(
        self, full: list[str], build: SimBuild, *, full_stages: bool = True
    ) -> dict[str, Any]:
        base = "/" + "".join(f"job/{quote(p, safe='')}/" for p in full) + f"{build.number}/"
        stages = []
        node_id = 5
        for stage in build.stages or []:
            stage_id = str(node_id)
            node_id += 1
            steps = []
            for name, status, start, duration in stage.steps:
                steps.append(
                    {
                        "_links": {
                            "self": {"href": f"{base}execution/node/{node_id}/wfapi/describe"},
                            "log": {"href": f"{base}execution/node/{node_id}/wfapi/log"},
                        },
                        "id": str(node_id),
                        "name": name,
                        "execNode": "",
                        "status": status,
                        "parameterDescription": f"echo {name} --token=should-never-be-sent",
                        "startTimeMillis": start,
                        "durationMillis": duration,
                        "pauseDurationMillis": 0,
                        "parentNodes": [stage_id],
                    }
                )
                node_id += 1
            stages.append(
                {
                    "_links": {"self": {"href": f"{base}execution/node/{stage_id}/wfapi/describe"}},
                    "id": stage_id,
                    "name": stage.name,
                    "execNode": "",
                    "status": stage.status,
                    "startTimeMillis": stage.start_ms,
                    "durationMillis": stage.duration_ms,
                    "pauseDurationMillis": 0,
                    **({"stageFlowNodes": steps} if full_stages else {}),
                }
            )
        return {
            "_links": {"self": {"href": f"{base}wfapi/describe"}},
            "id": str(build.number),
            "name": f"#{build.number}",
            "status": "IN_PROGRESS"
            if build.in_progress
            else ({"FAILURE": "FAILED"}.get(build.result or "", build.result or "SUCCESS")),
            "startTimeMillis": build.timestamp,
            "endTimeMillis": build.timestamp + build.duration,
            "durationMillis": build.duration,
            "queueDurationMillis": 5,
            "pauseDurationMillis": 0,
            "stages": stages,
        }


def _build_data(number: int, url: str | None, sha: str, branch: str) -> dict[str, Any]:
    """A git plugin ``BuildData`` action, as a checkout leaves it on the build."""
    name = f"refs/remotes/origin/{branch}"
    return {
        "_class": "hudson.plugins.git.util.BuildData",
        "buildsByBranchName": {name: {"buildNumber": number}},
        "lastBuiltRevision": {"SHA1": sha, "branch": [{"SHA1": sha, "name": name}]},
        "remoteUrls": [url] if url else [],
        "scmName": "",
    }
