#!/usr/bin/env node
// node-datachannel (libdatachannel, the WebRTC stack of OBS's WHIP output) as a WHIP
// publisher: H.264 video (PT 96) and Opus audio (PT 111) that an ffmpeg child encodes
// to RTP on loopback UDP; each packet is forwarded as is (SSRC set to the track's) with
// track.sendMessageBinary. Usage:
//
//   node scripts/ndc-whip.mjs --url http://127.0.0.1:8889/cam/whip --seconds 6
//        [--bind 127.0.0.1] [--setup actpass] [--log-level Warning]
//
// --bind pins libdatachannel's host candidates to one local address (without it, all
// interfaces); with 127.0.0.1 while the server advertises its interface address, the
// server must answer from the address the checks were sent to.
// --setup rewrites a=setup in the offer that is POSTed; the default, actpass, sends the
// offer exactly as libdatachannel wrote it.
// Prints one JSON line on stdout, {"connected":true,"dtlsMs":..,"videoPackets":..,
// "audioPackets":..,...}, exit 0; on failure {"error":..}, exit 1. libdatachannel's log
// goes to stderr. The whole run is bounded by --seconds + 18 s.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { writeSync } from 'node:fs';
import ndc from 'node-datachannel';

let ffmpeg = null;
let pc = null;
let finished = false;
let stopping = false; // ffmpeg is being stopped on purpose
const sockets = [];

const args = { url: null, seconds: 6, bind: undefined, setup: 'actpass', logLevel: 'Warning' };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (v === undefined) fail(`missing value for ${k}`);
  if (k === '--url') args.url = v;
  else if (k === '--seconds') args.seconds = Number(v);
  else if (k === '--bind') args.bind = v;
  else if (k === '--setup') args.setup = v;
  else if (k === '--log-level') args.logLevel = v;
  else fail(`unknown argument ${k}`);
}
if (!args.url || !(args.seconds > 0)) fail('usage: --url <whip url> --seconds N [--bind addr] [--setup actpass]');

const VIDEO_PT = 96;
const AUDIO_PT = 111;
// ffmpeg's -ssrc is a signed int option: keep SSRCs below 2^31.
const rnd = () => 1 + Math.floor(Math.random() * 0x7ffffffe);
const VIDEO_SSRC = rnd();
const AUDIO_SSRC = rnd();

const t = (ms) => new Promise((r) => setTimeout(r, ms));

function killFfmpeg() {
  stopping = true;
  if (ffmpeg && ffmpeg.exitCode === null && ffmpeg.signalCode === null) ffmpeg.kill('SIGKILL');
}
process.on('exit', killFfmpeg);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => fail(`killed by ${sig}`));

// Prints the one JSON line and exits; everything (ffmpeg, sockets, libdatachannel) is
// torn down first so node neither hangs nor leaves children behind.
function finish(obj, code) {
  if (finished) return;
  finished = true;
  killFfmpeg();
  for (const s of sockets) try { s.close(); } catch {}
  try { pc?.close(); } catch {}
  try { ndc.cleanup(); } catch {}
  writeSync(1, JSON.stringify(obj) + '\n');
  process.exit(code);
}
function fail(msg) {
  process.stderr.write(`ndc-whip: ${msg}\n`);
  finish({ error: String(msg) }, 1);
}

// Resolves when cond(value) holds for a value passed to the callback that `register`
// installs, or rejects after ms.
function waitFor(what, ms, register) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout (${ms} ms) waiting for ${what}`)), ms);
    register((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
  });
}

async function main() {
  // Hard bound on the whole run, whatever hangs.
  setTimeout(() => fail(`whole run exceeded ${args.seconds + 18} s`), (args.seconds + 18) * 1000).unref();

  ndc.initLogger(args.logLevel, (level, msg) => process.stderr.write(`[ndc ${level}] ${msg}\n`));
  const config = { iceServers: [] };
  if (args.bind) config.bindAddress = args.bind;
  pc = new ndc.PeerConnection('whip', config);

  const video = new ndc.Video('0', 'SendOnly');
  video.addH264Codec(VIDEO_PT, 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1');
  video.addSSRC(VIDEO_SSRC, 'video', 'hubcast-ndc', 'video');
  const audio = new ndc.Audio('1', 'SendOnly');
  audio.addOpusCodec(AUDIO_PT); // opus/48000/2
  audio.addSSRC(AUDIO_SSRC, 'audio', 'hubcast-ndc', 'audio');
  const vtrack = pc.addTrack(video);
  const atrack = pc.addTrack(audio);

  let connectedAt = null;
  let stateError = null;
  const connected = waitFor('PeerConnection connected', 10000, (ok, ko) => {
    pc.onStateChange((s) => {
      process.stderr.write(`ndc-whip: state ${s}\n`);
      if (s === 'connected' && connectedAt === null) { connectedAt = performance.now(); ok(); }
      else if (s === 'failed' || s === 'closed') { stateError = `PeerConnection ${s}`; ko(new Error(stateError)); }
    });
  });
  connected.catch(() => {}); // awaited later; avoid an unhandled rejection meanwhile

  // Offer with every candidate in it (no trickle), as OBS does.
  const gathered = waitFor('ICE gathering complete', 5000, (ok) =>
    pc.onGatheringStateChange((s) => s === 'complete' && ok()));
  pc.setLocalDescription('offer');
  if (pc.gatheringState() !== 'complete') await gathered;
  let offer = pc.localDescription().sdp;
  if (!/a=setup:actpass/.test(offer)) throw new Error('libdatachannel offer lacks a=setup:actpass');
  if (args.setup !== 'actpass') offer = offer.replace(/a=setup:actpass/g, `a=setup:${args.setup}`);

  const res = await fetch(args.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: offer,
    signal: AbortSignal.timeout(5000),
  });
  const answer = await res.text();
  if (res.status !== 201) throw new Error(`POST ${args.url}: HTTP ${res.status}: ${answer.slice(0, 300)}`);
  const location = res.headers.get('location');
  pc.setRemoteDescription(answer, 'answer');
  const answeredAt = performance.now();
  await connected;

  // Tracks open right after DTLS; give them a moment, then start the encoder so the
  // first packets the server sees carry SPS/PPS and an IDR frame.
  const open = (tr, name) => tr.isOpen() ? Promise.resolve() :
    waitFor(`${name} track open`, 3000, (ok) => tr.onOpen(ok));
  await Promise.all([open(vtrack, 'video'), open(atrack, 'audio')]);

  const counts = { video: 0, audio: 0, sendFailed: 0 };
  const listen = (track, ssrc, kind) => new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sockets.push(sock);
    sock.on('error', reject);
    sock.on('message', (pkt) => {
      // Only RTP: version 2 and not an RTCP packet type (200-204) in byte 1.
      if (pkt.length < 12 || (pkt[0] >> 6) !== 2 || (pkt[1] >= 200 && pkt[1] <= 204)) return;
      if (!track.isOpen()) return;
      pkt.writeUInt32BE(ssrc, 8);
      if (track.sendMessageBinary(pkt)) counts[kind]++;
      else counts.sendFailed++;
    });
    sock.bind(0, '127.0.0.1', () => resolve(sock.address().port));
  });
  const vport = await listen(vtrack, VIDEO_SSRC, 'video');
  const aport = await listen(atrack, AUDIO_SSRC, 'audio');

  // -t bounds ffmpeg by itself should this process die without killing it.
  const limit = String(args.seconds + 20);
  ffmpeg = spawn('ffmpeg', [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', limit, '-map', '0:v', '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency',
    '-profile:v', 'baseline', '-g', '30', '-pix_fmt', 'yuv420p', '-bsf:v', 'h264_mp4toannexb',
    '-f', 'rtp', '-payload_type', String(VIDEO_PT), '-ssrc', String(VIDEO_SSRC),
    `rtp://127.0.0.1:${vport}?pkt_size=1200`,
    '-t', limit, '-map', '1:a', '-c:a', 'libopus', '-ar', '48000', '-ac', '2',
    '-f', 'rtp', '-payload_type', String(AUDIO_PT), '-ssrc', String(AUDIO_SSRC),
    `rtp://127.0.0.1:${aport}?pkt_size=1200`,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  ffmpeg.on('error', (e) => fail(`ffmpeg: ${e.message}`));
  ffmpeg.on('exit', (code, sig) => { if (!stopping && !finished) fail(`ffmpeg exited early (code ${code}, signal ${sig})`); });

  const sendStart = performance.now();
  while (performance.now() - sendStart < args.seconds * 1000) {
    await t(100);
    if (stateError) throw new Error(`${stateError} while sending`);
  }

  const pair = pc.getSelectedCandidatePair();
  const result = {
    connected: true,
    dtlsMs: Math.round(connectedAt - answeredAt),
    videoPackets: counts.video,
    audioPackets: counts.audio,
    sendFailed: counts.sendFailed,
    status: res.status,
    location,
    pair: pair ? `${pair.local.address}:${pair.local.port} -> ${pair.remote.address}:${pair.remote.port}` : null,
  };
  killFfmpeg();
  // End the WHIP session the way OBS does; its result is reported, not judged.
  if (location) {
    try {
      const del = await fetch(new URL(location, args.url), { method: 'DELETE', signal: AbortSignal.timeout(2000) });
      result.deleteStatus = del.status;
    } catch (e) {
      result.deleteStatus = `error: ${e.message}`;
    }
  }
  finish(result, 0);
}

main().catch((e) => fail(e.message ?? e));
