"""What every command shares: reading the settings, argument types, URLs safe to print."""

from __future__ import annotations

import argparse

from harvester.config import (
    LedgerSettings,
    Settings,
    config_path,
    load_ledger_settings,
    load_settings,
)
from harvester.util.logs import configure_logging


def settings(args: argparse.Namespace) -> Settings:
    """The settings of ``--config`` (or its defaults), with logging set up as they say."""
    loaded = load_settings(config_path(args.config))
    configure_logging(args.log_level or loaded.logging.level, loaded.logging.format)
    return loaded


def ledger_settings(args: argparse.Namespace) -> LedgerSettings:
    """The ``ledger`` and ``logging`` sections only: ``ledger ...`` and ``db`` need no secrets."""
    loaded = load_ledger_settings(config_path(args.config))
    configure_logging(args.log_level or loaded.logging.level, loaded.logging.format)
    return loaded


def build_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"BUILD must be a build number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"BUILD must be 1 or more, got {number}")
    return number


def positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {number}")
    return number
