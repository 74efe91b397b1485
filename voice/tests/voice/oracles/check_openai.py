"""Validates OpenAI Realtime messages with the `openai` package's own types.

stdin: JSON lines {"direction": "client" | "server", "message": {...}}. Each message must
validate in strict mode against RealtimeClientEvent / RealtimeServerEvent, carry no field the
models do not declare, and dump back to exactly the same JSON. Exit 0 only if all pass.
"""
import base64
import binascii

from pydantic import TypeAdapter
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

from common import finish, records, unknown_fields

ADAPTERS = {"client": TypeAdapter(RealtimeClientEvent), "server": TypeAdapter(RealtimeServerEvent)}

checked, failures = 0, []
for n, rec in records():
    checked += 1
    msg = rec["message"]
    where = f"line {n} ({rec['direction']} {msg.get('type')!r})"
    try:
        model = ADAPTERS[rec["direction"]].validate_python(msg, strict=True)
    except Exception as e:  # noqa: BLE001 - report every validation problem
        failures.append(f"{where}: invalid: {e}")
        continue
    extra = unknown_fields(model)
    if extra:
        failures.append(f"{where}: fields unknown to the SDK: {extra}")
    dumped = model.model_dump(mode="json", exclude_unset=True)
    if dumped != msg:
        failures.append(f"{where}: does not round-trip: {dumped} != {msg}")
    if msg.get("type") == "input_audio_buffer.append":
        try:
            base64.b64decode(msg["audio"], validate=True)
        except (binascii.Error, ValueError) as e:
            failures.append(f"{where}: audio is not base64: {e}")
finish(checked, failures)
