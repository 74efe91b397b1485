"""Oracle: the official `twilio` package. Reads a JSON request on stdin, writes JSON on stdout.

{"twiml": [[verb, ...], ...]}                  -> {"twiml": [xml, ...]}
{"sign": {"token", "cases": [{"url", "params": [[k, v], ...]}],
          "check": [{"url", "params", "signature"}]}}
                                               -> {"signatures": [...], "valid": [bool, ...]}
{"rest": {"base_url", "account_sid", "token", "twiml", "status_callback", "amd_callback"}}
                                               -> {"sid", "status", "after_update", "after_hangup"}
"""
import json
import sys

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Dial, Gather, VoiceResponse


class MultiDict(dict):
    """Repeated form fields, read the way Flask's MultiDict is."""

    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs
        for k, v in pairs:
            self[k] = v

    def getall(self, name):
        return [v for k, v in self.pairs if k == name]


def pick(spec, *names):
    return {n: spec[n] for n in names if n in spec}


def twiml(verbs):
    response = VoiceResponse()
    for v in verbs:
        kind = v["kind"]
        if kind == "connect":
            connect = Connect(**pick(v, "action", "method"))
            stream = connect.stream(**pick(v, "url", "name", "status_callback", "status_callback_method"))
            for name, value in v.get("parameters", []):
                stream.parameter(name=name, value=value)
            response.append(connect)
        elif kind == "say":
            response.say(v["text"], **pick(v, "voice", "language", "loop"))
        elif kind == "dial":
            dial = Dial(**pick(v, "action", "method", "caller_id", "timeout", "time_limit", "answer_on_bridge"))
            getattr(dial, v["noun"])(v["target"])
            response.append(dial)
        elif kind == "pause":
            response.pause(length=v["length"])
        elif kind == "redirect":
            response.redirect(v["url"], **pick(v, "method"))
        elif kind == "enqueue":
            response.enqueue(v["name"], **pick(v, "wait_url"))
        elif kind == "hangup":
            response.hangup()
        elif kind == "play":
            response.play(v["url"])
        elif kind == "gather":
            gather = Gather(**pick(v, "action", "method", "input", "num_digits", "finish_on_key", "timeout",
                                   "speech_timeout", "language", "hints", "action_on_empty_result"))
            for prompt in v.get("prompts", []):
                if "say" in prompt:
                    gather.say(prompt["say"], **pick(prompt, "language"))
                else:
                    gather.play(prompt["play"])
            response.append(gather)
        elif kind == "record":
            response.record(**pick(v, "action", "method", "max_length", "timeout", "finish_on_key", "play_beep",
                                   "recording_status_callback"))
        else:
            raise ValueError(kind)
    return str(response)


def sign(spec):
    validator = RequestValidator(spec["token"])
    signatures = [validator.compute_signature(c["url"], MultiDict(c["params"])) for c in spec["cases"]]
    valid = [validator.validate(c["url"], MultiDict(c["params"]), c["signature"]) for c in spec["check"]]
    return {"signatures": signatures, "valid": valid}


def rest(spec):
    from twilio.rest import Client

    client = Client(spec["account_sid"], spec["token"])
    client.api.base_url = spec["base_url"]
    call = client.calls.create(
        to="+420777123456",
        from_="+12025550100",
        twiml=spec["twiml"],
        status_callback=spec["status_callback"],
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=spec["amd_callback"],
        timeout=25,
    )
    redirected = client.calls(call.sid).update(url="https://ex.com/transfer")
    hung_up = client.calls(call.sid).update(status="completed")
    return {"sid": call.sid, "status": call.status, "after_update": redirected.status, "after_hangup": hung_up.status}


request = json.load(sys.stdin)
if "twiml" in request:
    out = {"twiml": [twiml(verbs) for verbs in request["twiml"]]}
elif "sign" in request:
    out = sign(request["sign"])
else:
    out = rest(request["rest"])
json.dump(out, sys.stdout)
