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


def check_strictly(adapter, msg, where, failures):
    """Validates `msg` strictly with a pydantic TypeAdapter: no field unknown to the SDK, and it
    must dump back to exactly the same JSON. Returns the model, or None if it did not validate."""
    try:
        model = adapter.validate_python(msg, strict=True)
    except Exception as e:  # noqa: BLE001 - report every validation problem
        failures.append(f"{where}: invalid: {e}")
        return None
    extra = unknown_fields(model)
    if extra:
        failures.append(f"{where}: fields unknown to the SDK: {extra}")
    dumped = model.model_dump(mode="json", exclude_unset=True)
    if dumped != msg:
        failures.append(f"{where}: does not round-trip: {dumped} != {msg}")
    return model


def finish(checked, failures):
    for failure in failures:
        print(failure)
    print(f"checked {checked} messages, {len(failures)} failures")
    sys.exit(1 if failures or checked == 0 else 0)
