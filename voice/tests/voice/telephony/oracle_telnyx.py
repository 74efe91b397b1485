"""Oracle: the official `telnyx` package sends the same commands our client sends, to the
same fake API. Reads {"base_url", "api_key", "call", "other", "stream_url"} on stdin; writes
what the SDK parsed from the fake's answers."""
import json
import sys

from telnyx import Telnyx

spec = json.load(sys.stdin)
client = Telnyx(api_key=spec["api_key"], base_url=spec["base_url"], max_retries=0)
actions = client.calls.actions
call, other, stream_url = spec["call"], spec["other"], spec["stream_url"]
results = []
results.append(actions.answer(
    call, stream_url=stream_url, stream_track="inbound_track", stream_bidirectional_mode="rtp",
    stream_bidirectional_codec="PCMU", client_state="dGVuYW50PTQy", command_id="c1"))
results.append(actions.speak(call, payload="Dobrý den", voice="female", language="cs-CZ", command_id="c2"))
results.append(actions.gather_using_speak(
    call, payload="Press 1", voice="female", minimum_digits=1, maximum_digits=4, timeout_millis=5000,
    terminating_digit="#", command_id="c3"))
results.append(actions.gather(
    call, minimum_digits=1, maximum_digits=4, timeout_millis=5000, terminating_digit="#", command_id="c4"))
results.append(actions.transfer(
    call, to="+420777000111", from_="+12025550100", answering_machine_detection="detect", command_id="c5"))
results.append(actions.bridge(call, call_control_id_to_bridge_with=other, command_id="c6"))
results.append(actions.start_recording(call, channels="dual", format="mp3", play_beep=False, command_id="c7"))
results.append(actions.start_streaming(
    call, stream_url=stream_url, stream_track="inbound_track", stream_bidirectional_mode="rtp",
    stream_bidirectional_codec="PCMU", command_id="c8"))
results.append(actions.enqueue(call, queue_name="tenant-1:billing", max_wait_time_secs=600, command_id="c8q"))
results.append(actions.hangup(call, command_id="c9"))
dialed = client.calls.dial(
    connection_id="1494404757140276705", to="+420777123456", from_="+12025550100",
    answering_machine_detection="premium", stream_url=stream_url, stream_track="inbound_track",
    stream_bidirectional_mode="rtp", stream_bidirectional_codec="PCMU", timeout_secs=30,
    client_state="Y2FtcGFpZ249Nw==", command_id="d1")
json.dump({
    "results": [r.data.result for r in results],
    "dialed": {
        "call_control_id": dialed.data.call_control_id,
        "call_leg_id": dialed.data.call_leg_id,
        "call_session_id": dialed.data.call_session_id,
        "is_alive": dialed.data.is_alive,
    },
}, sys.stdout)
