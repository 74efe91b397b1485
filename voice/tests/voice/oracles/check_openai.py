"""Validates OpenAI Realtime messages with the `openai` package's own types.

stdin: JSON lines {"direction": "client" | "server", "message": {...}}. Each message must
validate in strict mode against RealtimeClientEvent / RealtimeServerEvent, carry no field the
models do not declare, and dump back to exactly the same JSON. Exit 0 only if all pass.
"""
import base64
import binascii

from pydantic import TypeAdapter
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

from common import check_strictly, finish, records

ADAPTERS = {"client": TypeAdapter(RealtimeClientEvent), "server": TypeAdapter(RealtimeServerEvent)}

checked, failures = 0, []
for n, rec in records():
    checked += 1
    msg = rec["message"]
    where = f"line {n} ({rec['direction']} {msg.get('type')!r})"
    if check_strictly(ADAPTERS[rec["direction"]], msg, where, failures) is None:
        continue
    if msg.get("type") == "input_audio_buffer.append":
        try:
            base64.b64decode(msg["audio"], validate=True)
        except (binascii.Error, ValueError) as e:
            failures.append(f"{where}: audio is not base64: {e}")
finish(checked, failures)
