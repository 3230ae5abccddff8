#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/. Run from anywhere; idempotent.

The seeds are committed; this script documents how they were made and regenerates them.
"""
import base64
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(ROOT)
SEEDS = os.path.join(ROOT, "seeds")


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- shared media
SPS = base64.b64decode("Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==")  # x264 High 1280x720
PPS = base64.b64decode("aOvjyyLA")
SPS_BASELINE = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01, 0x40, 0x16, 0xE8, 0x06, 0xD0, 0xA1, 0x35])
SEI = bytes([0x06, 0x05, 0x04, 0xDC, 0x45, 0xE9, 0xBD, 0x80])
AUD = bytes([0x09, 0xF0])


def idr(n):
    return bytes([0x65, 0x88, 0x84]) + bytes((i * 7 + 3) & 0xFF for i in range(n - 3))


def pslice(n):
    return bytes([0x41, 0x9A, 0x02]) + bytes((i * 13 + 1) & 0xFF for i in range(n - 3))


def stap_a(*nals):
    out = bytes([0x78])
    for n in nals:
        out += struct.pack(">H", len(n)) + n
    return out


def fu_a(nal, size):
    ind = (nal[0] & 0xE0) | 28
    data = nal[1:]
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    out = []
    for i, c in enumerate(chunks):
        h = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0) | (nal[0] & 0x1F)
        out.append(bytes([ind, h]) + c)
    return out


def rtp(seq, ts, marker, payload, pt=96, ssrc=0x11223344):
    return struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


# ---------------------------------------------------------------- rtsp_message
FFMPEG_SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "a=tool:libavformat 61.1.100\r\nm=video 0 RTP/AVP 96\r\nb=AS:2000\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAH6zZQFAFuhAAAAMAEAAAAwPI8YMZYA==,aOvjyyLA; profile-level-id=64001F\r\n"
    "a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 opus/48000/2\r\n"
    "a=fmtp:97 sprop-stereo=1\r\na=control:streamid=1\r\n"
)
GST_SDP = (
    "v=0\no=- 1188340656180883 1 IN IP4 192.168.1.10\ns=Session streamed with GStreamer\n"
    "i=rtsp-server\nt=0 0\na=tool:GStreamer\na=type:broadcast\na=range:npt=now-\n"
    "a=control:rtsp://192.168.1.10:8554/test\nm=video 0 RTP/AVP 96 97\na=rtpmap:97 H265/90000\n"
    "a=rtpmap:96 H264/90000\na=fmtp:97 sprop-vps=AAA\n"
    "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\n"
    "a=control:rtsp://192.168.1.10:8554/test/stream=0\nm=audio 0 RTP/AVP 0\n"
    "a=control:rtsp://192.168.1.10:8554/test/stream=1\n"
)


def req(method, uri, headers, body=""):
    h = f"{method} {uri} RTSP/1.0\r\n"
    for k, v in headers:
        h += f"{k}: {v}\r\n"
    if body:
        h += f"Content-Length: {len(body.encode())}\r\n"
    return (h + "\r\n" + body).encode()


def interleaved(ch, payload):
    return b"$" + bytes([ch]) + struct.pack(">H", len(payload)) + payload


ua = ("User-Agent", "Lavf61.1.100")
base = "rtsp://127.0.0.1:8554/cam"
announce = req("ANNOUNCE", base, [("Content-Type", "application/sdp"), ("CSeq", "2"), ua], FFMPEG_SDP)
setup_tcp = (
    req("SETUP", base + "/streamid=0", [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"), ("CSeq", "3"), ua])
    + req("SETUP", base + "/streamid=1", [("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3;mode=record"), ("CSeq", "4"), ua, ("Session", "12345678")])
)
setup_udp = (
    req("SETUP", base + "/streamid=0", [("Transport", "RTP/AVP/UDP;unicast;client_port=30000-30001;mode=record"), ("CSeq", "3"), ua])
    + req("SETUP", base + "/streamid=1", [("Transport", "RTP/AVP/UDP;unicast;client_port=30002-30003;mode=record"), ("CSeq", "4"), ua, ("Session", "12345678;timeout=60")])
)
record = req("RECORD", base, [("Range", "npt=0.000-"), ("CSeq", "5"), ua, ("Session", "12345678")])
frames = b"".join(
    interleaved(0, rtp(100 + i, 9000, i == 3, p))
    for i, p in enumerate([stap_a(SPS, PPS), fu_a(idr(2000), 1100)[0], fu_a(idr(2000), 1100)[1], pslice(40)])
) + interleaved(2, rtp(7, 960, True, b"\xfc\xff\xfe", pt=97)) + interleaved(1, b"\x81\xc8\x00\x06" + bytes(24))

write("rtsp_message", "ffmpeg_announce_whole", b"\x00" + announce)
write("rtsp_message", "ffmpeg_publish_tcp_chunk7", b"\x07" + req("OPTIONS", base, [("CSeq", "1"), ua]) + announce + setup_tcp + record + frames)
write("rtsp_message", "ffmpeg_publish_udp_chunk64", b"\x40" + announce + setup_udp + record)
write("rtsp_message", "gstreamer_announce_lf", b"\x01" + req("ANNOUNCE", "rtsp://192.168.1.10:8554/test", [("Content-Type", "application/sdp"), ("CSeq", "2")], GST_SDP)
      + req("SETUP", "rtsp://192.168.1.10:8554/test/stream=0", [("CSeq", "3"), ("Transport", 'RTP/AVP;unicast;client_port=5000-5001;mode="PLAY,RECORD"')]))
write("rtsp_message", "reader_describe_setup_play", b"\x10"
      + req("DESCRIBE", base, [("CSeq", "2"), ("Accept", "application/sdp"), ua])
      + req("SETUP", base + "/trackID=0", [("CSeq", "3"), ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"), ua])
      + req("SETUP", base + "/trackID=1", [("CSeq", "4"), ("Transport", "RTP/AVP;unicast;client_port=6970-6971,RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=DEADBEEF"), ("Session", "abc")])
      + req("PLAY", base + "/", [("CSeq", "5"), ("Session", "abc"), ("Range", "npt=0.000-")])
      + req("GET_PARAMETER", base, [("CSeq", "6"), ("Session", "abc")])
      + b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: 2\r\n\r\nok"
      + req("TEARDOWN", base, [("CSeq", "7"), ("Session", "abc")]))
write("rtsp_message", "interleaved_only", b"\x03" + frames)
write("rtsp_message", "folded_headers_lf", b"\x00OPTIONS * RTSP/1.0\nCSeq: 7\nX-Long: part one\n  part two\n\n\r\n\r\nSET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 8\r\nContent-Length: 5\r\n\r\nhello")

# ---------------------------------------------------------------- sdp_offer
with open(os.path.join(REPO, "tests/data/chromium-whep-offer.sdp"), "rb") as f:
    write("sdp_offer", "chromium-whep-offer.sdp", f.read())
with open(os.path.join(REPO, "tests/data/chromium-whip-offer.sdp"), "rb") as f:
    write("sdp_offer", "chromium-whip-offer.sdp", f.read())
write("sdp_offer", "vp8-only.sdp",
      "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
      "c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
      "a=fingerprint:sha-256 1B:3A:F7:44:5E:D1:ED:A8:E0:70:FC:AD:2F:F1:4A:13:D8:D6:07:CE:42:41:7D:A8:36:1F:1E:68:C2:1B:27:A8\r\n"
      "a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n")
write("sdp_offer", "small-h264-opus-answer.sdp",
      "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
      "a=fingerprint:sha-256 00:11\r\nm=video 9 UDP/TLS/RTP/SAVPF 102 96\r\nc=IN IP4 0.0.0.0\r\n"
      "a=candidate:1 1 udp 2130706431 192.0.2.1 8189 typ host\r\n"
      "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\na=rtcp-fb:102 transport-cc\r\n"
      "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
      "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=640c1f\r\n"
      "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
      "a=candidate:1 1 udp 2130706431 192.0.2.1 8189 typ host\r\n"
      "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n")

# ---------------------------------------------------------------- h264
def h264_input(flags, pkts, sprop=None):
    out = bytes([flags])
    if sprop is not None:
        s = sprop.encode()
        out += bytes([len(s)]) + s
    for ctl, payload in pkts:
        out += bytes([ctl]) + struct.pack("<H", len(payload)) + payload
    return out

NEXT_TS = 2
MARK = 1
idr_frags = fu_a(idr(3000), 1100)
write("h264", "stapa_sps_pps_fua_idr", h264_input(0, [(NEXT_TS, stap_a(SPS, PPS))] + [(0, f) for f in idr_frags[:-1]] + [(MARK, idr_frags[-1])] + [(NEXT_TS | MARK, pslice(500))]))
write("h264", "sprop_then_idr_single_nals", h264_input(1, [(NEXT_TS, AUD), (0, SEI), (MARK, idr(900)), (NEXT_TS | MARK, pslice(200)), (NEXT_TS, pslice(50)), (MARK, pslice(60))]))
write("h264", "sprop_from_input_baseline", h264_input(3, [(NEXT_TS, SPS_BASELINE), (0, PPS), (MARK, idr(1500))], sprop=base64.b64encode(SPS_BASELINE).decode() + "," + base64.b64encode(PPS).decode()))
big = fu_a(idr(9000), 4000)
write("h264", "large_single_and_fua_loss", h264_input(0, [(NEXT_TS, stap_a(SPS, PPS, SEI)), (0, big[0]), (0x0C, big[1]), (MARK, big[2]), (NEXT_TS | MARK, idr(5000)), (NEXT_TS | 0x10, pslice(30)), (MARK | 0x08, pslice(30))]))
write("h264", "webrtc_passthrough_sized", h264_input(0, [(NEXT_TS, stap_a(SPS_BASELINE, PPS))] + [(0, f) for f in fu_a(idr(2400), 1180)[:-1]] + [(MARK, fu_a(idr(2400), 1180)[-1]), (NEXT_TS | MARK, pslice(1100))]))

# ---------------------------------------------------------------- rtp_ingest
def ingest_input(chunks):
    out = b""
    for ctl, data in chunks:
        out += bytes([ctl]) + struct.pack("<H", len(data)) + data
    return out

V, A = 0, 1
DRAIN, JOIN, DISC, FIX = 2, 4, 8, 0x10
seq = 500
chunks = []
ts = 3000
for au in range(3):
    payloads = ([stap_a(SPS, PPS)] + fu_a(idr(2500), 1100)) if au != 1 else [pslice(300)]
    for i, p in enumerate(payloads):
        chunks.append((V | (DRAIN if i == len(payloads) - 1 else 0), rtp(seq, ts, i == len(payloads) - 1, p)))
        seq += 1
    chunks.append((A, rtp(au, au * 960, True, b"\xfc" + bytes(40), pt=111)))
    ts += 3000
chunks.append((V | JOIN, rtp(seq, ts, True, pslice(100))))
chunks.append((V | DISC | DRAIN, rtp(seq + 1, ts + 3000, True, stap_a(SPS, PPS, idr(200)))))
chunks.append((A | DRAIN, b"\x81\xc9\x00\x07" + bytes(28)))  # RTCP RR on the RTP port
write("rtp_ingest", "camera_gop_with_opus", ingest_input(chunks))
pt_chunks = [(V | FIX, rtp(0, 90000, False, stap_a(SPS_BASELINE, PPS))), (V | FIX, rtp(0, 90000, True, idr(1000))),
             (V | FIX | JOIN, rtp(0, 93000, True, pslice(800))), (A | FIX | DRAIN, rtp(0, 960, True, b"\xfc\x01", pt=111)),
             (V | FIX, rtp(0, 96000, True, idr(5000))), (0x20, rtp(1, 1, True, b"x")), (V | DRAIN, b"\x90\x60\x00\x01" + bytes(8) + b"\xbe\xde\x00\x01\x10\xff\x00\x00" + pslice(20))]
write("rtp_ingest", "webrtc_publisher_ext_padding", ingest_input(pt_chunks + [(V, rtp(9, 99000, True, pslice(20) + b"\x00\x00\x03")[:0] + bytes([0xA0]) + rtp(9, 99000, True, pslice(20) + b"\x00\x00\x03")[1:])]))

# ---------------------------------------------------------------- config
with open(os.path.join(REPO, "configs/hubcast.yml"), "rb") as f:
    write("config", "hubcast.yml", f.read())
write("config", "paths_regex_sources.yml", """\
logLevel: debug
readTimeout: 1m30s
writeQueueSize: 1024
rtspAddress: 127.0.0.1:0
rtpAddress: "[::1]:8000"
webrtcAdditionalHosts: [192.0.2.10, localhost]
webrtcAllowOrigins: ['https://example.com', 'http://*.example.org']
webrtcSRTPProfiles: [AEAD_AES_256_GCM]
pathDefaults:
  sourceOnDemandStartTimeout: 500ms
  maxReaders: 10
paths:
  cam1:
    source: rtsp://user:pass@192.0.2.5:554/stream1
    sourceOnDemand: yes
    rtspTransport: tcp
  ~^live/[a-z0-9]+$:
    overridePublisher: no
  all_others:
""")
write("config", "errors_unknown_key.yml", "rtsp: yes\nrtmp: yes\npaths:\n  a/../b:\n    source: publisher\n")
write("config", "durations_addresses.yml", """\
readTimeout: 1.5h
writeTimeout: 0
webrtcHandshakeTimeout: 250us
apiAddress: :9997
metricsAddress: "[::]:0"
webrtcICEServers2:
  - url: stun:stun.example.org:3478
  - url: turn:turn.example.org:3478
    username: u
    password: p
paths:
  all:
  x.y_z-1/cam~2:
""")
write("config", "empty_and_null.yml", "---\n# nothing\n")
# peer_in: byte 0 picks the profile (0 GCM-128, 1 GCM-256, 2 AES-CM); datagrams split at
# 0xff, so the seeds avoid that byte inside datagrams.
srtp_like = rtp(1, 3000, True, bytes([0x65] * 40) + bytes([0x11] * 16))
srtcp_rr = bytes([0x80, 201, 0, 1, 0, 0, 0, 42]) + bytes([0x80, 0, 0, 1]) + bytes([0x22] * 16)
srtcp_cm = bytes([0x80, 201, 0, 1, 0, 0, 0, 42]) + bytes([0x80, 0, 0, 1]) + bytes([0x33] * 10)
stun_check = bytes.fromhex("000100082112a442") + bytes(range(12)) + bytes.fromhex("00240004") + bytes(4)
write("peer_in", "gcm-srtp-srtcp-stun", b"\x00" + srtp_like + b"\xff" + srtcp_rr + b"\xff" + stun_check)
write("peer_in", "aes-cm-srtcp", b"\x02" + srtcp_cm + b"\xff" + srtp_like)
print("seeds written to", SEEDS)
