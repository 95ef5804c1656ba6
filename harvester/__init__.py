"""harvester: ships finished Jenkins builds to an SEI custom CI/CD webhook, exactly once."""

__version__ = "0.1.0"
