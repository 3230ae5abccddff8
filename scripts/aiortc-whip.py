"""aiortc (PyPI) as a WHIP publisher: H.264 video and Opus audio, encoded by aiortc from a
file that Debian's ffmpeg generates (a test pattern and a 440 Hz tone). Prints one JSON line.

--bind pins aiortc's host candidate to one local address, as in aiortc-whep.py.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time

import aioice.ice
from whep_http import post_offer
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer


def prefer(transceiver, mime):
    codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == mime])


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--bind")
    args = ap.parse_args()
    if args.bind:
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [args.bind]

    source = tempfile.NamedTemporaryFile(suffix=".mkv", delete=False).name
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=30:duration={args.seconds + 5}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={args.seconds + 5}",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
         "-c:a", "libopus", source],
        check=True, timeout=60,
    )
    player = MediaPlayer(source)
    pc = RTCPeerConnection()
    video = pc.addTransceiver(player.video, direction="sendonly")
    audio = pc.addTransceiver(player.audio, direction="sendonly")
    prefer(video, "video/h264")
    prefer(audio, "audio/opus")

    connected = asyncio.get_running_loop().create_future()

    @pc.on("connectionstatechange")
    def on_state():
        if pc.connectionState == "connected" and not connected.done():
            connected.set_result(time.monotonic())

    await pc.setLocalDescription(await pc.createOffer())
    status, location, answer = await asyncio.get_running_loop().run_in_executor(
        None, post_offer, args.url, pc.localDescription.sdp
    )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    posted = time.monotonic()
    result = {"status": status, "location": location}
    at = await asyncio.wait_for(connected, timeout=15)
    result["connectMs"] = round((at - posted) * 1000)
    await asyncio.sleep(args.seconds)
    stats = await video.sender.getStats()
    result["videoPackets"] = sum(
        getattr(s, "packetsSent", 0) for s in stats.values() if s.type == "outbound-rtp"
    )
    await pc.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(), timeout=90)))
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
