"""aiortc (PyPI) as a WHEP viewer: offers a video and an audio transceiver, as players do,
decodes what arrives, and prints one JSON line with frame counts, the picture size and the
audio's pitch.

--bind pins aiortc's host candidate to one local address (127.0.0.1 in the tests) while the
server's candidate is another of the machine's addresses, so the server must answer from the
address each check was sent to (RFC 8445 section 7.3) or aiortc drops the reply.
"""

import argparse
import asyncio
import json
import sys
import time

import aioice.ice
from whep_http import post_offer
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


def pitch(samples, rate):
    """Frequency from upward zero crossings: enough to tell a 440 Hz tone from noise."""
    ups = sum(1 for a, b in zip(samples, samples[1:]) if a < 0 <= b)
    return ups * rate / max(len(samples), 1)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--bind")
    args = ap.parse_args()
    if args.bind:
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [args.bind]

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    result = {"videoFrames": 0, "audioFrames": 0, "width": 0, "height": 0}
    tasks = []
    samples = []
    first = {}
    started = time.monotonic()

    async def read_video(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            first.setdefault("video", time.monotonic())
            result["videoFrames"] += 1
            result["width"], result["height"] = frame.width, frame.height

    async def read_audio(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            result["audioFrames"] += 1
            result["audioRate"] = frame.sample_rate
            # Interleaved s16: keep the first channel for the pitch.
            if len(samples) < 48000 * 2:
                raw = bytes(frame.planes[0])[: frame.samples * 2 * len(frame.layout.channels)]
                step = 2 * len(frame.layout.channels)
                samples.extend(
                    int.from_bytes(raw[i : i + 2], "little", signed=True)
                    for i in range(0, len(raw), step)
                )

    @pc.on("track")
    def on_track(track):
        reader = read_video if track.kind == "video" else read_audio
        tasks.append(asyncio.ensure_future(reader(track)))

    await pc.setLocalDescription(await pc.createOffer())
    status, location, answer = await asyncio.get_running_loop().run_in_executor(
        None, post_offer, args.url, pc.localDescription.sdp
    )
    result["status"] = status
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    posted = time.monotonic()
    await asyncio.sleep(args.seconds)
    result["iceState"] = pc.iceConnectionState
    if "video" in first:
        result["firstFrameMs"] = round((first["video"] - posted) * 1000)
    if samples:
        result["pitchHz"] = round(pitch(samples[4800:], result["audioRate"]))
    for t in tasks:
        t.cancel()
    await pc.close()
    result["elapsedMs"] = round((time.monotonic() - started) * 1000)
    print(json.dumps(result))
    return 0 if result["videoFrames"] > 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(), timeout=60)))
    except Exception as e:  # one JSON line whatever went wrong, for the test's message
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
