#!/usr/bin/env python3
"""Records what an RTP sender (ffmpeg -f rtp, GStreamer udpsink) sends into
tests/data/captures/<name>.rtp, next to its SDP in <name>.sdp, for the replay tests.

Usage: capture-rtp.py NAME PORT -- COMMAND...  (COMMAND sends RTP to 127.0.0.1:PORT and
writes the SDP to <name>.sdp itself, e.g. ffmpeg's -sdp_file.)

File format: for each packet, a 4-byte big-endian length, then the packet.
"""
import socket
import struct
import subprocess
import sys

name, port = sys.argv[1], int(sys.argv[2])
cmd = sys.argv[sys.argv.index("--") + 1:]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
sock.settimeout(2.0)
proc = subprocess.Popen(cmd)
packets = []
try:
    while len(packets) < 5000:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            break
        packets.append(data)
finally:
    proc.wait(timeout=30)
with open(f"{name}.rtp", "wb") as f:
    for p in packets:
        f.write(struct.pack(">I", len(p)) + p)
print(f"{name}: {len(packets)} packets")
