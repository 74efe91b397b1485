"""Validates Deepgram Voice Agent (v1) messages with deepgram-sdk's own agent types.

stdin: JSON lines {"direction": "client" | "server", "message": {...}}. A client message must be
one of those our adapter sends (Settings, FunctionCallResponse, InjectAgentMessage, KeepAlive,
as the SDK's socket client sends them); a server message one the SDK's socket client receives.
Each must validate strictly, carry no undeclared field and dump back to exactly the same JSON
(so a field the SDK would fill in or drop shows up). Exit 0 only if all pass.
"""
import typing

from pydantic import TypeAdapter

from deepgram.agent.v1.socket_client import V1SocketClientResponse
from deepgram.agent.v1.types import (
    AgentV1InjectAgentMessage,
    AgentV1KeepAlive,
    AgentV1SendFunctionCallResponse,
    AgentV1Settings,
)

from common import check_strictly, finish, records

CLIENT = TypeAdapter(
    typing.Union[AgentV1Settings, AgentV1SendFunctionCallResponse, AgentV1InjectAgentMessage, AgentV1KeepAlive]
)
SERVER = TypeAdapter(V1SocketClientResponse)

checked, failures = 0, []
for n, rec in records():
    checked += 1
    direction = rec["direction"]
    msg = rec["message"]
    where = f"line {n} ({direction} {msg.get('type')!r})"
    if not isinstance(msg, dict):
        failures.append(f"{where}: not a JSON object")
        continue
    if check_strictly((CLIENT if direction == "client" else SERVER), msg, where, failures) is None:
        continue
finish(checked, failures)
