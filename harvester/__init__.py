"""harvester: ships finished Jenkins builds to an SEI custom CI/CD webhook; each build once, nothing lost."""

__version__ = "0.1.0"
