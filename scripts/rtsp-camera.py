#!/usr/bin/python3
"""A real RTSP camera for the tests: GStreamer's gst-rtsp-server serving H.264 (x264,
baseline, 1280x720 30 fps) and Opus at rtsp://127.0.0.1:PORT/cam.

Prints one line per event on stdout so a test can follow it:
  READY <port>            the server listens
  CLIENT <ip>:<port>      an RTSP client connected
  CLOSED <ip>:<port>      that client went away

Usage: scripts/rtsp-camera.py PORT [--no-h264 | --h265-aac]
  --no-h264   serve only VP8 video (no H.264)
  --h265-aac  serve H.265 (x265, 640x360 30 fps) and AAC (48 kHz stereo, RFC 3640), as
              Hikvision- and Dahua-style cameras do
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=1280,height=720,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 key-int-max=30 "
    "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"
)
VP8 = (
    "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=10/1 "
    "! vp8enc deadline=1 ! rtpvp8pay name=pay0 pt=96"
)
H265 = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 "
    "! x265enc tune=zerolatency speed-preset=ultrafast bitrate=1000 key-int-max=30 "
    "! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=-1"
)
AAC = (
    "audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=48000,channels=2 "
    "! voaacenc bitrate=64000 ! rtpmp4gpay name=pay1 pt=97"
)
AUDIO = (
    "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 "
    "! opusenc ! rtpopuspay name={name} pt=97"
)


def say(*words):
    print(*words, flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    port = sys.argv[1]
    no_h264 = "--no-h264" in sys.argv[2:]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    if no_h264:
        launch = VP8
    elif "--h265-aac" in sys.argv[2:]:
        launch = f"{H265} {AAC}"
    else:
        launch = f"{VIDEO} {AUDIO.format(name='pay1')}"
    factory.set_launch(f"( {launch} )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)

    def on_client(_server, client):
        addr = client.get_connection().get_read_socket().get_remote_address()
        who = f"{addr.get_address().to_string()}:{addr.get_port()}"
        say("CLIENT", who)
        client.connect("closed", lambda _c: say("CLOSED", who))

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    say("READY", port)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
