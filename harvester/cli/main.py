"""The command line: the one place that turns errors into messages and exit codes
(:func:`main`). The parser is in :mod:`.parser`, the commands in :mod:`.harvest` and :mod:`.ledger`;
the parts they use are built by :mod:`harvester.app`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from harvester.cli.output import complain
from harvester.cli.parser import Handler, build_parser
from harvester.errors import ExitCode, HarvesterError
from harvester.util.logs import configure_logging

log = logging.getLogger("harvester")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Until the config is read, log at the requested level in text; the settings reconfigure it.
    configure_logging(args.log_level or "INFO", "text")
    handler: Handler = args.handler
    try:
        return handler(args)
    except HarvesterError as exc:
        complain(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        complain("interrupted")
        return 130
    except BrokenPipeError:
        # `harvester demo | head -5`: the reader left. Say nothing more (stdout is gone), and
        # keep Python from complaining about it again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.WORK_LEFT
    except Exception:  # the CLI edge: anything unexpected is a bug, reported with its traceback
        log.exception("unexpected error; please report it with this traceback")
        return ExitCode.WORK_LEFT


def entry_point() -> None:
    sys.exit(main())
