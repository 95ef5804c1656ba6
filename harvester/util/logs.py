"""Logging set-up: human text or JSON lines (``logging.format``)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from harvester.util.urls import scrub

# Attributes every LogRecord has; anything else was passed with extra= and is structured context.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Scrub(logging.Filter):
    """No URL's password in any log line, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg, record.args = scrub(message), None
        return True


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Scrub())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (every HTTP request, with library internals) drowns the harvester's own
    # lines, which say the same in a user's words; DEBUG adds our own line per request instead.
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # urllib3 warns at every retry of a Jenkins request, with its whole URL; the harvester's own
    # line names the request that failed, once its retries are spent.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # A cycle longer than the interval (a backlog) is expected: the next one starts when it ends.
    # APScheduler would warn at every interval meanwhile that it "skipped" one.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # stamina logs "stamina.retry_scheduled" with no detail; the deliverer says what failed.
    logging.getLogger("stamina").setLevel(logging.ERROR)
