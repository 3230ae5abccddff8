#!/usr/bin/env node
// Headless-Chromium end-to-end driver for hubcast's built-in WHIP publisher and WHEP reader
// pages. Usage:
//
//   node scripts/browser-e2e.mjs --base http://127.0.0.1:8889 --scenario NAME
//        [--path cam] [--expect-cipher gcm|any] [--max-first-frame-ms N]
//        [--pages auto|server|local] [--timeout-s 120]
//
// Scenarios:
//   whip-whep  publish from a page (fake camera+microphone) and play it in another page
//   play-only  play an existing stream (e.g. one ffmpeg pushes over RTSP)
//   republish  publish, play, stop publishing, publish again from a new page; the reader
//              must notice the end and pick the new stream up without a reload
//
// Prints one JSON line with what it measured (stdout) and exits 0 on success; on failure
// the JSON line has "ok": false and "error", the message is repeated on stderr, exit 1.
// --pages: where the HTML comes from. "server" loads {base}/{path}/ and {base}/{path}/publish;
// "local" serves src/webrtc/pages/*.html in place of those URLs (Playwright route
// interception, so relative whip/whep URLs still reach the server); "auto" (default) uses
// the server's page when it answers 200 text/html, the local file otherwise.

import { chromium } from 'playwright-core';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const PAGES_DIR = join(HERE, '..', 'src', 'webrtc', 'pages');
const CHROMIUM_PATHS = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

// ---- command line ----------------------------------------------------------------------

function usage(msg) {
  if (msg) process.stderr.write(`error: ${msg}\n`);
  process.stderr.write(
    'usage: node scripts/browser-e2e.mjs --base http://127.0.0.1:8889 ' +
      '--scenario whip-whep|play-only|republish [--path cam] [--expect-cipher gcm|any] ' +
      '[--max-first-frame-ms N] [--pages auto|server|local] [--timeout-s 120] ' +
      '[--video-codec H264|VP8|VP9|AV1] [--audio-codec OPUS|PCMU|PCMA|G722]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    base: null,
    scenario: null,
    path: 'cam',
    expectCipher: 'any',
    maxFirstFrameMs: null,
    pages: 'auto',
    timeoutS: 120,
    videoCodec: 'H264',
    // The publisher's audio codec, set with setCodecPreferences (the page has no menu for it).
    audioCodec: 'OPUS',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let [k, v] = a.startsWith('--') && a.includes('=') ? a.split(/=(.*)/s, 2) : [a, undefined];
    const val = () => {
      if (v !== undefined) return v;
      if (i + 1 >= argv.length) usage(`${k} needs a value`);
      return argv[++i];
    };
    switch (k) {
      case '--base': o.base = val().replace(/\/+$/, ''); break;
      case '--scenario': o.scenario = val(); break;
      case '--path': o.path = val().replace(/^\/+|\/+$/g, ''); break;
      case '--expect-cipher': o.expectCipher = val().toLowerCase(); break;
      case '--max-first-frame-ms': o.maxFirstFrameMs = Number(val()); break;
      case '--pages': o.pages = val(); break;
      case '--timeout-s': o.timeoutS = Number(val()); break;
      case '--video-codec': o.videoCodec = val().toUpperCase(); break;
      case '--audio-codec': o.audioCodec = val().toUpperCase(); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!o.base) usage('--base is required');
  if (!['whip-whep', 'play-only', 'republish'].includes(o.scenario)) {
    usage('--scenario must be whip-whep, play-only or republish');
  }
  if (!['gcm', 'any'].includes(o.expectCipher)) usage('--expect-cipher must be gcm or any');
  if (o.maxFirstFrameMs !== null && !(o.maxFirstFrameMs > 0)) usage('bad --max-first-frame-ms');
  if (!['auto', 'server', 'local'].includes(o.pages)) usage('--pages must be auto, server or local');
  if (!(o.timeoutS > 0)) usage('bad --timeout-s');
  if (!o.path) usage('--path must not be empty');
  if (!['H264', 'VP8', 'VP9', 'AV1'].includes(o.videoCodec)) usage('--video-codec must be H264, VP8, VP9 or AV1');
  if (!['OPUS', 'PCMU', 'PCMA', 'G722'].includes(o.audioCodec)) usage('--audio-codec must be OPUS, PCMU, PCMA or G722');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const result = { scenario: opts.scenario, ok: false, path: opts.path };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Fail extends Error {}
function check(cond, msg) {
  if (!cond) throw new Fail(msg);
}

// ---- browser ---------------------------------------------------------------------------

let context = null;
let userDataDir = null;
const foreignRequests = [];
const pageErrors = [];

async function launch() {
  const executablePath = CHROMIUM_PATHS.find((p) => existsSync(p));
  check(executablePath, `no Chromium at ${CHROMIUM_PATHS.join(' or ')} (apt-get install chromium)`);
  userDataDir = mkdtempSync(join(tmpdir(), 'hubcast-e2e-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    ignoreDefaultArgs: ['--enable-automation'],
    args: CHROMIUM_ARGS,
    permissions: ['camera', 'microphone'],
    viewport: { width: 1280, height: 720 },
    timeout: 30_000,
  });
  const origin = new URL(opts.base).origin;
  // The pages must not reach anything but the server they came from.
  context.on('request', (req) => {
    const u = req.url();
    if (u.startsWith('data:') || u.startsWith('blob:') || u === 'about:blank') return;
    let o;
    try { o = new URL(u).origin; } catch { o = u; }
    if (o !== origin) foreignRequests.push(u);
  });
  // Persistent contexts open with one blank page; keep it out of the way.
  for (const p of context.pages()) await p.close().catch(() => {});
}

async function closeBrowser() {
  const c = context;
  context = null;
  if (c) {
    // Closing the pages first runs their pagehide handlers, which DELETE their sessions.
    await Promise.race([
      Promise.all(c.pages().map((p) => p.close().catch(() => {}))).then(() => sleep(300)),
      sleep(5000),
    ]);
    await Promise.race([c.close().catch(() => {}), sleep(10_000)]);
  }
  if (userDataDir) {
    try { rmSync(userDataDir, { recursive: true, force: true }); } catch { /* best effort */ }
    userDataDir = null;
  }
}

// Where each page's HTML comes from: "server" or "local" (see --pages).
const pageSource = {};

async function decideSource(url, file) {
  if (opts.pages !== 'auto') return opts.pages;
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const ct = r.headers.get('content-type') || '';
    await r.arrayBuffer();
    if (r.status === 200 && ct.includes('text/html')) return 'server';
  } catch (e) {
    throw new Fail(`cannot reach ${url}: ${e.message}`);
  }
  check(existsSync(join(PAGES_DIR, file)), `no ${file} in ${PAGES_DIR}`);
  return 'local';
}

async function openPage(name, kind) {
  const url = kind === 'reader'
    ? `${opts.base}/${opts.path}/`
    : `${opts.base}/${opts.path}/publish`;
  const file = kind === 'reader' ? 'reader.html' : 'publisher.html';
  if (!pageSource[kind]) pageSource[kind] = await decideSource(url, file);
  const page = await context.newPage();
  if (kind === 'publisher' && opts.audioCodec !== 'OPUS') {
    // Only the chosen audio codec is offered, as a phone app or SIP gateway would.
    await page.addInitScript((want) => {
      const add = RTCPeerConnection.prototype.addTransceiver;
      RTCPeerConnection.prototype.addTransceiver = function (track, init) {
        const tr = add.call(this, track, init);
        const kind = typeof track === 'string' ? track : track.kind;
        if (kind === 'audio') {
          const codecs = RTCRtpSender.getCapabilities('audio').codecs
            .filter((c) => c.mimeType.toUpperCase() === 'AUDIO/' + want);
          tr.setCodecPreferences(codecs);
        }
        return tr;
      };
    }, opts.audioCodec);
  }
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    // A 404 while the stream is absent is expected; the browser logs it as an error.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) {
      pageErrors.push(`${name} console: ${m.text()}`);
    }
  });
  if (pageSource[kind] === 'local') {
    const html = readFileSync(join(PAGES_DIR, file), 'utf8');
    // A predicate, not a glob: path names may hold glob characters.
    const href = new URL(url).href;
    await page.route((u) => u.href === href, (route) => {
      if (route.request().method() !== 'GET') return route.continue();
      return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html });
    });
  }
  const resp = await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  check(resp && resp.status() === 200, `${name}: GET ${url} answered ${resp && resp.status()}`);
  await waitFor(page, name, () => typeof window.hubcast === 'object' && window.hubcast !== null,
    null, 5000, 'window.hubcast to exist');
  return page;
}

async function pageState(page) {
  try {
    return await page.evaluate(() => {
      const h = window.hubcast || {};
      return {
        state: h.state,
        lastError: h.lastError,
        connectionState: h.pc ? h.pc.connectionState : null,
      };
    });
  } catch (e) {
    return { evaluateError: e.message };
  }
}

// Waits for fn (run in the page) to return a truthy value; fails with the page's state.
async function waitFor(page, name, fn, arg, timeoutMs, what) {
  try {
    const h = await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 50 });
    return await h.jsonValue();
  } catch (e) {
    if (e instanceof Fail) throw e;
    const st = await pageState(page);
    throw new Fail(`${name}: timed out after ${timeoutMs} ms waiting for ${what}; ` +
      `page state ${JSON.stringify(st)}` + (/Timeout/i.test(e.message) ? '' : `: ${e.message}`));
  }
}

// One snapshot of the page's peer connection statistics.
async function stats(page) {
  return page.evaluate(async () => {
    const pc = window.hubcast && window.hubcast.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const codecs = {};
    const inbound = {};
    const outbound = {};
    const transports = [];
    report.forEach((s) => {
      if (s.type === 'codec') codecs[s.id] = s.mimeType;
      else if (s.type === 'inbound-rtp') inbound[s.kind] = s;
      else if (s.type === 'outbound-rtp') {
        // Several (simulcast) layers would be summed; the pages send one.
        const o = outbound[s.kind];
        if (!o) outbound[s.kind] = { ...s };
        else for (const k of ['pliCount', 'packetsSent', 'framesEncoded']) o[k] = (o[k] || 0) + (s[k] || 0);
      } else if (s.type === 'transport') transports.push(s);
    });
    const pick = (s, keys) => {
      if (!s) return null;
      const o = { codec: s.codecId ? codecs[s.codecId] || null : null };
      for (const k of keys) if (s[k] !== undefined) o[k] = s[k];
      return o;
    };
    const inKeys = ['packetsReceived', 'packetsLost', 'framesDecoded', 'framesReceived',
      'framesDropped', 'keyFramesDecoded', 'frameWidth', 'frameHeight', 'jitter', 'nackCount',
      'pliCount', 'firCount', 'bytesReceived', 'totalSamplesReceived', 'concealedSamples'];
    const outKeys = ['packetsSent', 'framesEncoded', 'pliCount', 'firCount', 'nackCount',
      'frameWidth', 'frameHeight', 'bytesSent', 'encoderImplementation'];
    const t = transports.find((x) => x.dtlsState === 'connected') || transports[0] || null;
    return {
      connectionState: pc.connectionState,
      inbound: { video: pick(inbound.video, inKeys), audio: pick(inbound.audio, inKeys) },
      outbound: { video: pick(outbound.video, outKeys), audio: pick(outbound.audio, outKeys) },
      transport: t && {
        srtpCipher: t.srtpCipher || null,
        dtlsCipher: t.dtlsCipher || null,
        tlsVersion: t.tlsVersion || null,
        dtlsRole: t.dtlsRole || null,
        dtlsState: t.dtlsState || null,
      },
    };
  });
}

// Like stats(), but fails when the page has no peer connection.
async function mustStats(page, name) {
  const s = await stats(page);
  if (!s) {
    throw new Fail(`${name}: no peer connection; page state ${JSON.stringify(await pageState(page))}`);
  }
  return s;
}

// ---- steps -----------------------------------------------------------------------------

async function publish(name) {
  const page = await openPage(name, 'publisher');
  // The page's codec menu drives setCodecPreferences: pick the first entry of the codec.
  const picked = await page.evaluate((want) => {
    const sel = document.getElementById('videoCodec');
    const o = [...sel.options].find((x) => x.textContent.toUpperCase().startsWith(want));
    if (!o) return [...sel.options].map((x) => x.textContent);
    sel.value = o.value;
    return null;
  }, opts.videoCodec);
  check(picked === null, `${name}: the codec menu has no ${opts.videoCodec}: ${JSON.stringify(picked)}`);
  // The page asks for the devices first (fake ones here); start() waits for that itself.
  const started = await page.evaluate(async () => {
    try {
      await window.hubcast.start();
      return { ok: true };
    } catch (e) {
      return { ok: false, error: String(e && e.message ? e.message : e) };
    }
  });
  check(started.ok, `${name}: start() failed: ${started.error}`);
  await waitFor(page, name,
    () => window.hubcast.pc && window.hubcast.pc.connectionState === 'connected',
    null, 10_000, 'its peer connection to be connected');
  return page;
}

// Waits for the reader to show its first frame; returns POST -> first frame, ms.
async function waitFirstFrame(page, name, timeoutMs) {
  const r = await waitFor(page, name, () => {
    const h = window.hubcast;
    return h.firstFrameAt !== null && h.postedAt !== null
      ? { ms: h.firstFrameAt - h.postedAt } : null;
  }, null, timeoutMs, 'the first video frame');
  return Math.round(r.ms * 10) / 10;
}

// Polls the reader's stats until video framesDecoded >= n; fails after timeoutMs.
async function waitFrames(page, name, n, timeoutMs) {
  const t0 = Date.now();
  let s = null;
  for (;;) {
    s = await stats(page);
    const fd = s && s.inbound.video ? s.inbound.video.framesDecoded || 0 : 0;
    if (fd >= n) return { stats: s, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) {
      throw new Fail(`${name}: only ${fd} video frames decoded ${timeoutMs} ms after playback ` +
        `started (need ${n}); stats ${JSON.stringify(s && s.inbound)}; ` +
        `page state ${JSON.stringify(await pageState(page))}`);
    }
    await sleep(100);
  }
}

function checkVideo(name, s) {
  const v = s.inbound.video;
  check(v, `${name}: no inbound-rtp video stats`);
  const want = 'video/' + opts.videoCodec;
  check(v.codec === want, `${name}: video codec is ${v.codec}, want ${want}`);
  // Not an exact size: the publisher's encoder may scale down on a busy 2-core machine.
  check(v.frameWidth >= 160 && v.frameHeight >= 90,
    `${name}: decoded frames of ${v.frameWidth}x${v.frameHeight}`);
  check(v.packetsLost === 0, `${name}: video packetsLost is ${v.packetsLost}, want 0`);
}

function checkAudio(name, s) {
  const a = s.inbound.audio;
  check(a, `${name}: no inbound-rtp audio stats`);
  check(a.packetsReceived > 0, `${name}: audio packetsReceived is ${a.packetsReceived}`);
  check(a.codec && a.codec.toUpperCase() === 'AUDIO/' + opts.audioCodec,
    `${name}: audio codec is ${a.codec}, want audio/${opts.audioCodec}`);
  check(a.packetsLost === 0, `${name}: audio packetsLost is ${a.packetsLost}, want 0`);
}

function cipherOf(s) {
  return s && s.transport ? s.transport.srtpCipher : null;
}

function checkCipher(name, cipher) {
  if (opts.expectCipher !== 'gcm') return;
  check(cipher && /GCM/i.test(cipher), `${name}: SRTP cipher is ${cipher}, want an AEAD GCM one`);
}

function summary(s) {
  if (!s) return null;
  const v = s.inbound.video;
  const a = s.inbound.audio;
  return {
    video: v && {
      codec: v.codec, framesDecoded: v.framesDecoded, packetsReceived: v.packetsReceived,
      packetsLost: v.packetsLost, keyFramesDecoded: v.keyFramesDecoded,
      width: v.frameWidth, height: v.frameHeight, framesDropped: v.framesDropped,
    },
    audio: a && { codec: a.codec, packetsReceived: a.packetsReceived, packetsLost: a.packetsLost,
      totalSamplesReceived: a.totalSamplesReceived, concealedSamples: a.concealedSamples },
  };
}

// ---- scenarios -------------------------------------------------------------------------

async function playOnly() {
  const b = await openPage('reader', 'reader');
  result.firstFrameMs = await waitFirstFrame(b, 'reader', 15_000);
  const { stats: s, ms } = await waitFrames(b, 'reader', 60, 5000);
  result.frames60Ms = ms;
  // Let a few more packets arrive so packetsLost covers a stretch, not just the start.
  await sleep(500);
  const fin = await mustStats(b, 'reader');
  checkVideo('reader', fin);
  result.reader = { ...summary(fin), srtpCipher: cipherOf(fin), transport: fin.transport };
  checkCipher('reader', cipherOf(fin));
  if (opts.maxFirstFrameMs !== null) {
    check(result.firstFrameMs <= opts.maxFirstFrameMs,
      `reader: POST -> first frame took ${result.firstFrameMs} ms, limit ${opts.maxFirstFrameMs} ms`);
  }
}

async function whipWhep() {
  const a = await publish('publisher');
  await sleep(300);
  const sa0 = await mustStats(a, 'publisher');
  const pliBefore = sa0.outbound.video ? sa0.outbound.video.pliCount || 0 : 0;
  result.publisherPliBefore = pliBefore;

  const b = await openPage('reader', 'reader');
  result.firstFrameMs = await waitFirstFrame(b, 'reader', 15_000);
  const { ms } = await waitFrames(b, 'reader', 60, 5000);
  result.frames60Ms = ms;
  await sleep(500);
  const sb = await mustStats(b, 'reader');
  checkVideo('reader', sb);
  checkAudio('reader', sb);

  // The server asks the publisher for a keyframe (PLI) when a reader joins.
  const t0 = Date.now();
  let sa = await mustStats(a, 'publisher');
  while ((sa.outbound.video ? sa.outbound.video.pliCount || 0 : 0) <= pliBefore &&
         Date.now() - t0 < 3000) {
    await sleep(100);
    sa = await mustStats(a, 'publisher');
  }
  const ov = sa.outbound.video;
  result.publisher = {
    video: ov && { codec: ov.codec, framesEncoded: ov.framesEncoded, packetsSent: ov.packetsSent,
      pliCount: ov.pliCount, firCount: ov.firCount, nackCount: ov.nackCount,
      encoder: ov.encoderImplementation },
    audio: sa.outbound.audio && { codec: sa.outbound.audio.codec,
      packetsSent: sa.outbound.audio.packetsSent },
    srtpCipher: cipherOf(sa),
    transport: sa.transport,
  };
  result.reader = { ...summary(sb), srtpCipher: cipherOf(sb), transport: sb.transport };
  check(ov && ov.codec === 'video/' + opts.videoCodec,
    `publisher: sends ${ov && ov.codec}, want video/${opts.videoCodec}`);
  check(sa.outbound.audio && sa.outbound.audio.packetsSent > 0, 'publisher: sends no audio');
  check(sa.outbound.audio.codec.toUpperCase() === 'AUDIO/' + opts.audioCodec,
    `publisher: sends ${sa.outbound.audio.codec}, want audio/${opts.audioCodec}`);
  check((ov.pliCount || 0) > 0 && (ov.pliCount || 0) > pliBefore,
    `publisher: pliCount ${ov.pliCount || 0} did not rise after the reader joined ` +
    `(was ${pliBefore})`);
  checkCipher('publisher', cipherOf(sa));
  checkCipher('reader', cipherOf(sb));
  if (opts.maxFirstFrameMs !== null) {
    check(result.firstFrameMs <= opts.maxFirstFrameMs,
      `reader: POST -> first frame took ${result.firstFrameMs} ms, limit ${opts.maxFirstFrameMs} ms`);
  }
}

async function republish() {
  const a = await publish('publisher');
  const b = await openPage('reader', 'reader');
  result.firstFrameMs = await waitFirstFrame(b, 'reader', 15_000);
  const first = await waitFrames(b, 'reader', 30, 10_000);
  checkVideo('reader', first.stats);
  result.before = summary(first.stats);

  // Watch the reader for the end of the stream: its pc leaving "connected", or its status
  // changing to a retrying one. Date.now() is shared by the pages of one browser.
  await b.evaluate(() => {
    const h = window.hubcast;
    const w = { oldPc: h.pc, oldAttempt: h.attempt, pcLeftAt: null, pcState: null,
      stateAt: null, state: null, states: [], dtlsClosedAt: null, dtlsState: null };
    window.__e2e = w;
    const pc = h.pc;
    // The server's hang-up (DTLS close_notify) shows here first.
    const dtls = pc.getReceivers().map((r) => r.transport).find(Boolean);
    if (dtls) {
      dtls.addEventListener('statechange', () => {
        if (w.dtlsClosedAt === null && dtls.state !== 'connected') {
          w.dtlsClosedAt = Date.now();
          w.dtlsState = dtls.state;
        }
      });
    }
    pc.addEventListener('connectionstatechange', () => {
      if (w.pcLeftAt === null && pc.connectionState !== 'connected') {
        w.pcLeftAt = Date.now();
        w.pcState = pc.connectionState;
      }
    });
    let last = h.state;
    w.timer = setInterval(() => {
      if (pc.connectionState !== 'connected' && w.pcLeftAt === null) {
        // pc.close() by the page itself fires no event: catch it here.
        w.pcLeftAt = Date.now();
        w.pcState = pc.connectionState;
      }
      if (h.state !== last) {
        last = h.state;
        w.states.push(last);
        if (w.stateAt === null && /retrying|disconnected|not available|closed|ended/i.test(last)) {
          w.stateAt = Date.now();
          w.state = last;
        }
      }
      if (w.states.length > 20) clearInterval(w.timer);
    }, 10);
  });

  const stop = await a.evaluate(async () => {
    const t = Date.now();
    await window.hubcast.stop();
    return { t, deleteStatus: window.hubcast.deleteStatus, ms: Date.now() - t };
  });
  const stopAt = stop.t;
  result.stop = { deleteStatus: stop.deleteStatus, stopMs: stop.ms };
  // Wait (at most 2 s after the stop) for either sign.
  const gone = await b.waitForFunction(
    (t) => {
      const w = window.__e2e;
      return (w.pcLeftAt !== null || w.stateAt !== null) || Date.now() - t > 2000;
    }, stopAt, { timeout: 5000, polling: 20 }).then(() => true).catch(() => false);
  await sleep(50);
  const w = await b.evaluate(() => {
    const x = window.__e2e;
    return { pcLeftAt: x.pcLeftAt, pcState: x.pcState, stateAt: x.stateAt, state: x.state,
      states: x.states.slice(), dtlsClosedAt: x.dtlsClosedAt, dtlsState: x.dtlsState };
  });
  await a.close().catch(() => {});
  const pcMs = w.pcLeftAt !== null ? w.pcLeftAt - stopAt : null;
  const stMs = w.stateAt !== null ? w.stateAt - stopAt : null;
  result.end = {
    dtlsClosedMs: w.dtlsClosedAt !== null ? w.dtlsClosedAt - stopAt : null,
    dtlsState: w.dtlsState,
    pcLeftConnectedMs: pcMs, pcState: w.pcState,
    // Only the page's own pc.close() makes it "closed": a reaction, not the server's signal.
    pcClosedByPage: w.pcState === 'closed',
    stateChangedMs: stMs, state: w.state,
    statesSeen: w.states,
    detectedBy: [pcMs !== null && pcMs <= 2000 ? `connectionState:${w.pcState}` : null,
      stMs !== null && stMs <= 2000 ? `state:${w.state}` : null].filter(Boolean),
  };
  check(gone && ((pcMs !== null && pcMs <= 2000) || (stMs !== null && stMs <= 2000)),
    `reader: did not notice the publisher stopping within 2 s ` +
    `(pc left connected after ${pcMs} ms, status changed after ${stMs} ms; ` +
    `states ${JSON.stringify(w.states)}; now ${JSON.stringify(await pageState(b))})`);

  // The path must be free now: the reader's next try (2 s later) gets 404.
  await waitFor(b, 'reader', () => /not available/.test(window.hubcast.state), null, 5000,
    'its retry to find the path without a stream (404) after the publisher left');
  result.end.notAvailableMs = Date.now() - stopAt;

  // A new publisher on the same path; the reader must come back by itself.
  const a2 = await publish('publisher2');
  const t2 = Date.now();
  await waitFor(b, 'reader', () => {
    const h = window.hubcast;
    return h.pc && h.pc !== window.__e2e.oldPc && h.pc.connectionState === 'connected';
  }, null, 10_000, 'a new peer connection after the republish');
  result.again = { reconnectMs: Date.now() - t2 };
  const remaining = Math.max(1000, 10_000 - (Date.now() - t2));
  const second = await waitFrames(b, 'reader', 30, remaining);
  result.again.frames30Ms = Date.now() - t2;
  checkVideo('reader', second.stats);
  result.again.firstFrameMs = await b.evaluate(() => {
    const h = window.hubcast;
    return h.firstFrameAt !== null && h.postedAt !== null
      ? Math.round((h.firstFrameAt - h.postedAt) * 10) / 10 : null;
  });
  result.again.attempts = await b.evaluate(() => window.hubcast.attempt - window.__e2e.oldAttempt);
  result.after = summary(second.stats);
  result.reader = { srtpCipher: cipherOf(second.stats) };
  const sa2 = await mustStats(a2, 'publisher2');
  result.publisher2 = { srtpCipher: cipherOf(sa2) };
  checkCipher('reader', cipherOf(second.stats));
  checkCipher('publisher2', cipherOf(sa2));
}

// ---- main ------------------------------------------------------------------------------

async function main() {
  const watchdog = setTimeout(async () => {
    result.error = `the whole run took more than ${opts.timeoutS} s`;
    process.stdout.write(JSON.stringify(result) + '\n');
    process.stderr.write(`FAIL: ${result.error}\n`);
    await closeBrowser();
    process.exit(1);
  }, opts.timeoutS * 1000);
  const t0 = Date.now();
  let code = 1;
  try {
    await launch();
    if (opts.scenario === 'play-only') await playOnly();
    else if (opts.scenario === 'whip-whep') await whipWhep();
    else await republish();
    check(foreignRequests.length === 0,
      `the pages made requests to other origins: ${foreignRequests.slice(0, 5).join(', ')}`);
    result.ok = true;
    code = 0;
  } catch (e) {
    result.error = e instanceof Fail ? e.message : `${e.name}: ${e.message}`;
  } finally {
    await closeBrowser();
    clearTimeout(watchdog);
  }
  result.pages = pageSource;
  if (pageErrors.length) result.pageErrors = pageErrors.slice(0, 10);
  if (foreignRequests.length) result.foreignRequests = foreignRequests.slice(0, 10);
  result.elapsedMs = Date.now() - t0;
  process.stdout.write(JSON.stringify(result) + '\n');
  if (code !== 0) process.stderr.write(`FAIL: ${result.error}\n`);
  process.exit(code);
}

main();
