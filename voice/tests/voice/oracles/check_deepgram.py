"""Validates Deepgram traffic with deepgram-sdk's own types and signatures.

stdin: JSON lines, one of
  {"direction": "client", "message": {...}}  control message on /v1/listen
  {"direction": "server", "message": {...}}  message from /v1/listen
  {"direction": "listen_query", "query": [[k, v], ...]}
  {"direction": "speak", "query": [[k, v], ...], "body": {...}}  POST /v1/speak
Messages must validate strictly, carry no undeclared field and round-trip; query parameters
must be parameters of the SDK's listen `connect` / speak `generate`, and enumerated ones must
use a value the SDK lists. Exit 0 only if all pass.
"""
import inspect
import typing

from pydantic import TypeAdapter

from deepgram.listen.v1.client import V1Client
from deepgram.listen.v1.socket_client import V1SocketClientResponse
from deepgram.listen.v1.types import ListenV1CloseStream, ListenV1Finalize, ListenV1KeepAlive
from deepgram.speak.v1.audio.raw_client import RawAudioClient
from deepgram.speak.v1.audio.types import (
    AudioGenerateRequestContainer,
    AudioGenerateRequestEncoding,
    AudioGenerateRequestModel,
)
from deepgram.types.listen_v1encoding import ListenV1Encoding
from deepgram.types.listen_v1interim_results import ListenV1InterimResults
from deepgram.types.listen_v1model import ListenV1Model
from deepgram.types.listen_v1vad_events import ListenV1VadEvents

from common import check_strictly, finish, records

CLIENT = TypeAdapter(typing.Union[ListenV1KeepAlive, ListenV1CloseStream, ListenV1Finalize])
SERVER = TypeAdapter(V1SocketClientResponse)
LISTEN_PARAMS = set(inspect.signature(V1Client.connect).parameters) - {"self", "request_options"}
SPEAK_PARAMS = set(inspect.signature(RawAudioClient.generate).parameters) - {"self", "request_options", "text"}


def literal_values(alias):
    """The values of the Literal inside `Union[Literal[...], Any]`."""
    for arg in typing.get_args(alias):
        if typing.get_origin(arg) is typing.Literal:
            return set(typing.get_args(arg))
    return set()


LISTEN_ENUMS = {
    "encoding": literal_values(ListenV1Encoding),
    "model": literal_values(ListenV1Model),
    "interim_results": literal_values(ListenV1InterimResults),
    "vad_events": literal_values(ListenV1VadEvents),
}
SPEAK_ENUMS = {
    "encoding": literal_values(AudioGenerateRequestEncoding),
    "container": literal_values(AudioGenerateRequestContainer),
    "model": literal_values(AudioGenerateRequestModel),
}
NUMERIC = {"sample_rate", "channels", "utterance_end_ms", "endpointing"}


def check_query(where, query, allowed, enums, failures):
    for key, value in query:
        if key not in allowed:
            failures.append(f"{where}: {key!r} is not an SDK parameter")
        elif key in enums and value not in enums[key]:
            failures.append(f"{where}: {key}={value!r} is not one of the SDK's values")
        elif key in NUMERIC and not value.isdigit():
            failures.append(f"{where}: {key}={value!r} is not a number")


checked, failures = 0, []
for n, rec in records():
    checked += 1
    direction = rec["direction"]
    where = f"line {n} ({direction})"
    if direction == "listen_query":
        check_query(where, rec["query"], LISTEN_PARAMS, LISTEN_ENUMS, failures)
        continue
    if direction == "speak":
        check_query(where, rec["query"], SPEAK_PARAMS, SPEAK_ENUMS, failures)
        body = rec["body"]
        if set(body) != {"text"} or not isinstance(body["text"], str):
            failures.append(f"{where}: the body must be exactly {{'text': str}}, got {body}")
        continue
    msg = rec["message"]
    if check_strictly((CLIENT if direction == "client" else SERVER), msg, where, failures) is None:
        continue
finish(checked, failures)
