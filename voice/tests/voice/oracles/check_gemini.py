"""Validates Gemini Live messages with google-genai's own types.

stdin: JSON lines {"direction": "client" | "server", "message": {...}}. Each message must
validate as LiveClientMessage / LiveServerMessage from JSON (so base64 is checked) with field
names in camelCase only (by_alias, not by_name; the models forbid unknown fields), and dump back
to the same JSON, which catches values pydantic only accepted by coercing them. Exit 0 only if
all pass.
"""
import base64
import binascii
import json

from google.genai import types

from common import finish, records

MODELS = {"client": types.LiveClientMessage, "server": types.LiveServerMessage}


def same(dumped, sent):
    """JSON equality, except that pydantic writes bytes as URL-safe base64 and we send standard."""
    if isinstance(dumped, dict) and isinstance(sent, dict):
        return dumped.keys() == sent.keys() and all(same(dumped[k], sent[k]) for k in dumped)
    if isinstance(dumped, list) and isinstance(sent, list):
        return len(dumped) == len(sent) and all(same(a, b) for a, b in zip(dumped, sent))
    if isinstance(dumped, str) and isinstance(sent, str) and dumped != sent:
        try:
            return base64.urlsafe_b64decode(dumped) == base64.b64decode(sent, validate=True)
        except (binascii.Error, ValueError):
            return False
    return type(dumped) is type(sent) and dumped == sent


checked, failures = 0, []
for n, rec in records():
    checked += 1
    msg = rec["message"]
    where = f"line {n} ({rec['direction']} {sorted(msg)})"
    try:
        model = MODELS[rec["direction"]].model_validate_json(json.dumps(msg), by_alias=True, by_name=False)
    except Exception as e:  # noqa: BLE001 - report every validation problem
        failures.append(f"{where}: invalid: {e}")
        continue
    dumped = json.loads(model.model_dump_json(by_alias=True, exclude_unset=True))
    if not same(dumped, msg):
        failures.append(f"{where}: does not round-trip: {dumped} != {msg}")
finish(checked, failures)
