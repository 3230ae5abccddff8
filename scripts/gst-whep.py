#!/usr/bin/python3
"""GStreamer webrtcbin as a WHEP viewer: a recvonly H.264 (or H.265) video and a recvonly
Opus audio transceiver (max-bundle), the offer POSTed once ICE gathering is complete (no
trickle), video decoded with avdec_h264 (avdec_h265) and audio with opusdec into counting
fakesinks.

    /usr/bin/python3 scripts/gst-whep.py --url http://127.0.0.1:8889/cam/whep --seconds 6
    /usr/bin/python3 scripts/gst-whep.py --url ... --video-codec h265

With --publish it is a WHIP publisher instead: one sendonly video transceiver fed by
videotestsrc (640x360 30 fps) through x264enc or x265enc, POSTed to a /whip URL the same
way; it succeeds if ICE connects and stays up for --seconds.

Prints one JSON line on stdout:
    {"videoFrames":N,"width":W,"height":H,"audioBuffers":M,"firstFrameMs":..,...}
and exits 0 if at least one video frame was decoded; otherwise {"error":..}, exit 1.
firstFrameMs counts from the answer being applied to the first decoded frame. The whole
run is bounded by a GLib timeout of --seconds + 20 s. Only stdlib and gi (python3-gi).
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO_CAPS = {
    "h264": "application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000,"
    "packetization-mode=(string)1,profile-level-id=(string)42e01f",
    # Main profile, as Safari and Chrome with a hardware decoder offer it.
    "h265": "application/x-rtp,media=video,encoding-name=H265,payload=96,clock-rate=90000,"
    "profile-id=(string)1,tier-flag=(string)0,level-id=(string)93,tx-mode=(string)SRST",
}
# encoding-params=2: RFC 7587 requires "opus/48000/2" in the SDP; without it webrtcbin
# writes "OPUS/48000" and the audio section is (rightly) refused.
AUDIO_CAPS = (
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"
    "encoding-params=(string)2"
)


def log(msg):
    print(f"gst-whep: {msg}", file=sys.stderr, flush=True)


class Viewer:
    def __init__(self, url, seconds, verbose=False, codec="h264", publish=False):
        self.url, self.seconds, self.verbose, self.codec = url, seconds, verbose, codec
        self.publish = publish
        self.loop = GLib.MainLoop()
        self.result = None  # (dict, exit code) once decided
        self.location = None
        self.answered_at = None
        self.first_frame_at = None
        self.video_frames = 0
        self.audio_buffers = 0
        self.width = self.height = None
        self.posted = False

        self.pipe = Gst.Pipeline.new("whep")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipe.add(self.webrtc)
        if publish:
            self.add_sender()
        else:
            recv = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
            for caps in (VIDEO_CAPS[codec], AUDIO_CAPS):
                self.webrtc.emit("add-transceiver", recv, Gst.Caps.from_string(caps))
        self.webrtc.connect("pad-added", self.on_pad_added)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_bus)

    def add_sender(self):
        enc = {
            "h264": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
            "! video/x-h264,profile=constrained-baseline",
            "h265": "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
            "! video/x-h265,profile=main",
        }[self.codec]
        src = Gst.parse_bin_from_description(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,"
            f"framerate=30/1 ! {enc} ! rtp{self.codec}pay config-interval=-1 pt=96 "
            f'! capsfilter caps="{VIDEO_CAPS[self.codec]}"',
            True,
        )
        self.pipe.add(src)
        src.link(self.webrtc)
        send = GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY
        self.webrtc.emit("get-transceiver", 0).set_property("direction", send)

    # -- signalling -------------------------------------------------------------------

    def start(self):
        self.pipe.set_state(Gst.State.PLAYING)
        promise = Gst.Promise.new_with_change_func(self.on_offer, None)
        self.webrtc.emit("create-offer", None, promise)

    def on_offer(self, promise, _data):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply else None
        if offer is None:
            return GLib.idle_add(self.finish_error, f"create-offer failed: {reply}")
        self.webrtc.emit("set-local-description", offer, None)
        # webrtcbin 1.22 may never report "complete" in some setups: post what has been
        # gathered after 5 s rather than wait forever.
        GLib.timeout_add(5000, self.post_offer, "gathering timeout")

    def on_gathering(self, webrtc, _pspec):
        state = webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.post_offer, "gathering complete")  # hop to the main thread

    def post_offer(self, why):
        if self.posted or self.result:
            return False
        self.posted = True
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        log(f"{why}; offer has {sdp.count('a=candidate:')} candidates")
        if self.verbose:
            log("offer:\n" + sdp)
        req = urllib.request.Request(
            self.url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                status, answer = resp.status, resp.read().decode()
                self.location = resp.headers.get("Location")
        except Exception as e:  # HTTPError included: the body says why
            body = e.read().decode(errors="replace")[:300] if hasattr(e, "read") else ""
            return self.finish_error(f"POST {self.url}: {e} {body}".strip())
        if status != 201:
            return self.finish_error(f"POST {self.url}: HTTP {status}, expected 201")
        if self.verbose:
            log("answer:\n" + answer)
        res, msg = GstSdp.SDPMessage.new_from_text(answer)
        if res != GstSdp.SDPResult.OK:
            return self.finish_error(f"unparsable answer: {res}")
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        promise = Gst.Promise.new_with_change_func(self.on_answer_set, None)
        self.webrtc.emit("set-remote-description", desc, promise)
        return False

    def on_answer_set(self, promise, _data):
        reply = promise.get_reply()
        # webrtcbin reports a refused description as an "error" field in the reply.
        if reply is not None and reply.has_field("error"):
            return GLib.idle_add(self.finish_error, f"set-remote-description: {reply.get_value('error')}")
        self.answered_at = time.monotonic()
        GLib.timeout_add(int(self.seconds * 1000), self.finish)  # thread-safe

    # -- media ------------------------------------------------------------------------

    def on_pad_added(self, _webrtc, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        media = caps.get_structure(0).get_string("media")
        log(f"incoming {media} pad: {caps.to_string()}")
        if media == "video":
            c = self.codec
            chain = f"rtp{c}depay ! {c}parse ! avdec_{c} ! fakesink name=vsink sync=false signal-handoffs=true"
        elif media == "audio":
            chain = "rtpopusdepay ! opusdec ! fakesink name=asink sync=false signal-handoffs=true"
        else:
            return
        # Elements to be linked dynamically; the queue decouples webrtcbin's thread.
        bin_ = Gst.parse_bin_from_description(f"queue ! {chain}", True)
        self.pipe.add(bin_)
        bin_.sync_state_with_parent()
        sink = bin_.get_by_name("vsink" if media == "video" else "asink")
        sink.connect("handoff", self.on_video if media == "video" else self.on_audio)
        pad.link(bin_.get_static_pad("sink"))

    def on_video(self, _sink, _buf, pad):
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
            s = pad.get_current_caps().get_structure(0)
            self.width, self.height = s.get_int("width")[1], s.get_int("height")[1]
        self.video_frames += 1

    def on_audio(self, _sink, _buf, _pad):
        self.audio_buffers += 1

    def on_bus(self, _bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            log(f"error from {msg.src.get_name()}: {err.message} ({dbg})")
        elif msg.type == Gst.MessageType.WARNING:
            err, _dbg = msg.parse_warning()
            log(f"warning from {msg.src.get_name()}: {err.message}")

    # -- end ----------------------------------------------------------------------------

    def finish(self):
        if self.result:
            return False
        res = {
            "videoFrames": self.video_frames,
            "width": self.width,
            "height": self.height,
            "audioBuffers": self.audio_buffers,
            "firstFrameMs": None if self.first_frame_at is None
            else round((self.first_frame_at - self.answered_at) * 1000),
            "location": self.location,
            "iceState": self.webrtc.get_property("ice-connection-state").value_nick,
        }
        connected = res["iceState"] in ("connected", "completed")
        if self.publish:
            self.result = (res, 0) if connected else ({"error": "ICE did not connect", **res}, 1)
        elif self.video_frames > 0:
            self.result = (res, 0)
        else:
            self.result = ({"error": "no video frame decoded", **res}, 1)
        self.loop.quit()
        return False

    def finish_error(self, msg):
        if not self.result:
            log(msg)
            self.result = ({"error": msg}, 1)
            self.loop.quit()
        return False

    def delete_session(self):
        if not self.location:
            return
        try:
            req = urllib.request.Request(urllib.parse.urljoin(self.url, self.location), method="DELETE")
            urllib.request.urlopen(req, timeout=2).close()
        except Exception as e:
            log(f"DELETE {self.location}: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--verbose", action="store_true", help="offer and answer to stderr")
    ap.add_argument("--video-codec", choices=sorted(VIDEO_CAPS), default="h264")
    ap.add_argument("--publish", action="store_true", help="WHIP publisher instead of viewer")
    args = ap.parse_args()

    Gst.init(None)
    v = Viewer(args.url, args.seconds, args.verbose, args.video_codec, args.publish)
    GLib.timeout_add(int((args.seconds + 20) * 1000), v.finish_error, f"timeout after {args.seconds + 20} s")
    GLib.idle_add(lambda: v.start() and False)
    v.loop.run()
    res, code = v.result
    print(json.dumps(res), flush=True)
    # Tearing a webrtcbin pipeline down has been seen to hang: never let it block the exit.
    threading.Timer(5, lambda: os._exit(code)).start()
    v.delete_session()
    v.pipe.set_state(Gst.State.NULL)
    os._exit(code)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        os._exit(1)
