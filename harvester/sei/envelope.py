"""The send-time envelope, pure: the stored payload is the mapped build; the fields
that come from the configuration (``instance_name``, ``instance_guid``, ``instance_url``) and the
parameter redaction are applied again as the config stands when the build is sent, so a fix to the
config (or a redaction added after a secret leaked) also reaches builds collected before it.

Redaction happens at collection too, so a secret never rests in the ledger; a pattern removed later
cannot un-redact what was already hidden.
"""

from __future__ import annotations

import json
from typing import Any

from harvester.sei.mapping import REDACTED, MappingRules, redacted
from harvester.sei.payload import compact_json


class Envelope:
    """The body to POST for a stored payload: ``stored`` itself (byte for byte) when the config
    changes nothing, else the payload with the current instance fields and redaction."""

    def __init__(self, rules: MappingRules) -> None:
        self.rules = rules
        # The instance fields as the payload's JSON spells them (``"key":"value"``).
        self._pairs = tuple(
            f"{json.dumps(key)}:{json.dumps(value, ensure_ascii=False)}"
            for key, value in (
                ("instance_name", rules.instance_name),
                ("instance_guid", rules.instance_guid),
                ("instance_url", rules.instance_url),
            )
        )

    def __call__(self, stored: str) -> str:
        if '"job_run_params"' not in stored and all(pair in stored for pair in self._pairs):
            return stored  # the common case, decided without parsing: nothing to change
        return envelope(stored, self.rules)


def envelope(stored: str, rules: MappingRules) -> str:
    """:class:`Envelope` without the shortcut."""
    data: dict[str, Any] = json.loads(stored)
    changed = False
    for key, value in (
        ("instance_name", rules.instance_name),
        ("instance_guid", rules.instance_guid),
        ("instance_url", rules.instance_url),
    ):
        if data.get(key) != value:
            data[key] = value
            changed = True
    for parameter in data.get("job_run_params") or []:
        name = parameter.get("name")
        if (
            isinstance(name, str)
            and parameter.get("value") != REDACTED
            and redacted(name, rules.redact_parameters)
        ):
            parameter["value"] = REDACTED
            changed = True
    if not changed:
        return stored
    return compact_json(data)
