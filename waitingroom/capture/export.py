"""``waitingroom captures export``: every captured record as CSV or JSON Lines, for
teams that import by hand."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from typing import TextIO

from waitingroom.engine import Engine

FORMATS = ("csv", "jsonl")
_FIXED = ["reference", "place", "submitted_at", "visitor"]


async def export_captures(engine: Engine, room: str, out: TextIO, *, fmt: str,
                          field_names: list[str], interest: bool = False) -> int:
    """Write ``room``'s captures (with ``interest``: the details left to hear if more
    stock comes in) to ``out`` in stream order; return how many.

    CSV columns: reference, place, submitted_at (UTC, ISO 8601), visitor, then
    ``field_names`` and any other field found in the records.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    columns = list(field_names)
    if fmt == "csv":  # a first pass finds fields that are no longer in the config
        async for record in engine.captures.all(room, interest=interest):
            columns += [name for name in record.fields if name not in columns]
        writer = csv.DictWriter(out, fieldnames=_FIXED + columns)
        writer.writeheader()
    count = 0
    async for record in engine.captures.all(room, interest=interest):
        row = {"reference": record.reference, "place": record.place,
               "submitted_at": datetime.fromtimestamp(record.submitted_at_ms / 1000, UTC)
               .isoformat(timespec="milliseconds"), "visitor": record.visitor}
        if fmt == "csv":
            writer.writerow({**row, **{k: _safe_cell(v) for k, v in record.fields.items()}})
        else:
            out.write(json.dumps({**row, "fields": record.fields}) + "\n")
        count += 1
    return count


def _safe_cell(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheet programs.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
