"""The bundled Jenkins simulator and webhook receiver, shipped for ``harvester demo``, the tests and
the benchmark: not product logic. Only the CLI (for ``demo``) and the tests import this package."""

from harvester.demo.instance import demo_instance, demo_new_build
from harvester.demo.model import (
    FOLDER,
    FREESTYLE,
    MULTIBRANCH,
    ORG_FOLDER,
    PIPELINE,
    SimBuild,
    SimJob,
    SimStage,
    branch_job_name,
)
from harvester.demo.receiver import Receiver, Reply
from harvester.demo.simulator import Simulator

__all__ = [
    "FOLDER",
    "FREESTYLE",
    "MULTIBRANCH",
    "ORG_FOLDER",
    "PIPELINE",
    "Receiver",
    "Reply",
    "SimBuild",
    "SimJob",
    "SimStage",
    "Simulator",
    "branch_job_name",
    "demo_instance",
    "demo_new_build",
]
