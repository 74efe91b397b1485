"""Shared helpers for the SDK oracles: read JSON lines, find unknown fields, report."""
import json
import sys

from pydantic import BaseModel


def records():
    """Yields (line number, record) for each non-empty JSON line on stdin."""
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if line:
            yield n, json.loads(line)


def unknown_fields(value, path="$"):
    """Paths of fields a pydantic model accepted only as extras (the SDK's models allow them)."""
    found = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{k}" for k in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += unknown_fields(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            found += unknown_fields(item, f"{path}.{k}")
    return found


def finish(checked, failures):
    for failure in failures:
        print(failure)
    print(f"checked {checked} messages, {len(failures)} failures")
    sys.exit(1 if failures or checked == 0 else 0)
