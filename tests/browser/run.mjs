#!/usr/bin/env node
// Headless-Chromium playback tests for drm-origin.
//
//   npm ci --prefix tests/browser && node tests/browser/run.mjs [name-filter ...]
//
// Starts the real server (target/release/drm-origin serve --assets assets --listen 127.0.0.1:0),
// serves the harness page (page/player.html) and the player libraries from node_modules on a
// second loopback port, then plays each asset with each player in Debian's /usr/bin/chromium
// driven by playwright-core. The page and the origin are different origins (different ports), so
// every manifest and segment fetch is a real cross-origin request that needs the origin's CORS.
//
// A case passes when currentTime > 4 s, video frames were decoded, the player saw the renditions
// the asset holds, and no player / media error was raised. Output: one `PASS name` or
// `FAIL name: reason` line per case (diagnostics indented below a FAIL), then `N passed, M failed`.
//
// Environment:
//   DRM_ORIGIN_BIN      server binary (default <repo>/target/release/drm-origin)
//   DRM_ORIGIN_ASSETS   assets folder (default <repo>/assets)
//   DRM_ORIGIN_URL      use an already running origin instead of starting one
//   CHROMIUM            browser binary (default /usr/bin/chromium)
//   CASE_TIMEOUT_MS     per-case timeout (default 30000)
//   VERBOSE=1           print diagnostics for passing cases too

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = process.env.DRM_ORIGIN_BIN || join(ROOT, 'target', 'release', 'drm-origin');
const ASSETS = process.env.DRM_ORIGIN_ASSETS || join(ROOT, 'assets');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CASE_TIMEOUT_MS = Number(process.env.CASE_TIMEOUT_MS || 30000);
const VERBOSE = !!process.env.VERBOSE;
const TARGET_TIME = 4.0;
const START_TOLERANCE = 0.5; // seconds: playback must start (and stay buffered) from below this

// Asset expectations: what every player must discover from the manifests.
const ASSET_EXPECT = {
  multi: { minVideoHeights: 3, minAudioLanguages: 2 },
  progressive: { minVideoHeights: 1, minAudioLanguages: 0 },
};
const CASES = [];
for (const asset of ['multi', 'progressive']) {
  CASES.push({ name: `dash-shaka-${asset}`, player: 'shaka', asset, manifest: 'manifest.mpd' });
  CASES.push({ name: `dash-dashjs-${asset}`, player: 'dashjs', asset, manifest: 'manifest.mpd' });
  CASES.push({ name: `hls-hlsjs-${asset}`, player: 'hlsjs', asset, manifest: 'master.m3u8' });
  CASES.push({ name: `hls-shaka-${asset}`, player: 'shaka', asset, manifest: 'master.m3u8' });
}

const LIBS = {
  '/lib/shaka-player.js': 'node_modules/shaka-player/dist/shaka-player.compiled.js',
  '/lib/hls.js': 'node_modules/hls.js/dist/hls.min.js',
  '/lib/dash.js': 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
};
const PAGES = { '/player.html': 'page/player.html' };

const cleanups = [];
function cleanup() {
  while (cleanups.length) {
    try { cleanups.pop()(); } catch { /* best effort */ }
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(130); });

// ---------------------------------------------------------------- origin process
const serverLog = []; // stderr lines of the origin

function startOrigin() {
  return new Promise((resolveP, reject) => {
    if (!existsSync(BIN)) return reject(new Error(`${BIN} missing: run \`cargo build --release\` first`));
    const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' };
    const child = spawn(BIN, ['serve', '--assets', ASSETS, '--listen', '127.0.0.1:0'], {
      cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
    let done = false;
    const timer = setTimeout(() => {
      if (!done) { done = true; reject(new Error('origin printed no "drm-origin listening on" line within 30 s')); }
    }, 30000);
    // eslint-disable-next-line no-control-regex
    createInterface({ input: child.stderr }).on('line', (l) => serverLog.push(l.replace(/\x1b\[[0-9;]*m/g, '')));
    createInterface({ input: child.stdout }).on('line', (l) => {
      const m = /^drm-origin listening on (http:\/\/\S+?)\/?$/.exec(l.trim());
      if (m && !done) { done = true; clearTimeout(timer); resolveP({ url: m[1], child }); }
    });
    child.on('exit', (code, sig) => {
      serverLog.push(`[run.mjs] origin exited code=${code} signal=${sig}`);
      if (!done) {
        done = true; clearTimeout(timer);
        reject(new Error(`origin exited before listening (code=${code} signal=${sig}); stderr:\n` +
          serverLog.slice(-20).map((l) => '    ' + l).join('\n')));
      }
    });
    child.on('error', (e) => { if (!done) { done = true; clearTimeout(timer); reject(e); } });
  });
}

// ---------------------------------------------------------------- page server
function startPageServer() {
  for (const rel of Object.values(LIBS)) {
    if (!existsSync(join(HERE, rel))) {
      throw new Error(`${rel} missing: run \`npm ci --prefix tests/browser\` first`);
    }
  }
  const files = { ...LIBS, ...PAGES };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/favicon.ico') { res.writeHead(204); return res.end(); }
    const rel = files[path];
    if (!rel || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found\n');
    }
    const body = readFileSync(join(HERE, rel));
    res.writeHead(200, {
      'content-type': rel.endsWith('.html') ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8',
      'content-length': body.length,
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolveP, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      cleanups.push(() => server.close());
      resolveP(`http://127.0.0.1:${server.address().port}`);
    });
  });
}

// ---------------------------------------------------------------- one case
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function runCase(browser, pageBase, originUrl, c) {
  const diag = { console: [], http: [], failed: [] };
  const context = await browser.newContext({ viewport: { width: 800, height: 450 } });
  const page = await context.newPage();
  page.on('console', (m) => diag.console.push(`console.${m.type()}: ${m.text()}`.slice(0, 800)));
  page.on('pageerror', (e) => diag.console.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) diag.http.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    diag.failed.push(`request failed: ${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`);
  });
  const logStart = serverLog.length;
  const src = `${originUrl}/${c.asset}/${c.manifest}`;
  const url = `${pageBase}/player.html?player=${c.player}&src=${encodeURIComponent(src)}`;
  const started = Date.now();
  let snap = null;
  let reason = null;
  try {
    await page.goto(url, { waitUntil: 'load', timeout: 10000 });
    for (;;) {
      snap = await page.evaluate(() => window.T.snapshot());
      if (snap.errors.length) {
        await sleep(300); // let a cascade of related errors arrive, then report them all
        snap = await page.evaluate(() => window.T.snapshot());
        reason = `player error: ${snap.errors[0]}`;
        break;
      }
      if (snap.currentTime > TARGET_TIME) {
        reason = checkPass(c, snap);
        break;
      }
      if (snap.ended) {
        reason = `playback ended at currentTime=${snap.currentTime.toFixed(3)} (duration=${snap.duration}) before ${TARGET_TIME} s`;
        break;
      }
      if (Date.now() - started > CASE_TIMEOUT_MS) {
        reason = `timeout after ${CASE_TIMEOUT_MS} ms: currentTime=${snap.currentTime.toFixed(3)} ` +
          `readyState=${snap.readyState} paused=${snap.paused} frames=${snap.totalVideoFrames} ` +
          `buffered=${JSON.stringify(snap.buffered)} state=${snap.state}`;
        break;
      }
      await sleep(200);
    }
  } catch (e) {
    reason = `harness: ${e && e.message ? e.message.split('\n')[0] : e}`;
  }
  await context.close().catch(() => {});
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  return { reason, snap, diag, logLines: serverLog.slice(logStart), secs };
}

function checkPass(c, snap) {
  if (!(snap.totalVideoFrames > 0)) return `currentTime=${snap.currentTime.toFixed(3)} but totalVideoFrames=${snap.totalVideoFrames}`;
  if (!(snap.videoWidth > 0 && snap.videoHeight > 0)) return `no video size (videoWidth=${snap.videoWidth} videoHeight=${snap.videoHeight})`;
  // Everything from the start up to currentTime must have been buffered (and so played): a player
  // that jumped a hole in the timeline (e.g. a first GOP placed before the period start, dropped by
  // the append window) still reaches 4 s, but skipped content.
  const t = snap.currentTime;
  const range = snap.buffered.find(([a, b]) => a <= t && t <= b + 0.1);
  if (!range || range[0] > START_TOLERANCE) {
    return `content before t=${range ? range[0].toFixed(3) : '?'} s was never buffered: buffered=${JSON.stringify(snap.buffered)} ` +
      `at currentTime=${t.toFixed(3)}, player seeks=${JSON.stringify(snap.seeks.map((x) => +x.toFixed(3)))}`;
  }
  const jump = snap.seeks.find((x) => x > START_TOLERANCE);
  if (jump !== undefined) return `player seeked to t=${jump.toFixed(3)} by itself (jumped a gap in the timeline)`;
  const want = ASSET_EXPECT[c.asset];
  const info = snap.info || {};
  const heights = info.videoHeights || [];
  const langs = info.audioLanguages || [];
  if (want && heights.length < want.minVideoHeights) {
    return `player found ${heights.length} video height(s) ${JSON.stringify(heights)}, expected >= ${want.minVideoHeights}`;
  }
  if (want && langs.length < want.minAudioLanguages) {
    return `player found ${langs.length} audio language(s) ${JSON.stringify(langs)}, expected >= ${want.minAudioLanguages}`;
  }
  return null;
}

function printDiagnostics(r) {
  const out = [];
  const s = r.snap;
  if (s) {
    out.push(`state=${s.state} currentTime=${s.currentTime.toFixed(3)} duration=${s.duration} readyState=${s.readyState} ` +
      `paused=${s.paused} frames=${s.totalVideoFrames} dropped=${s.droppedVideoFrames} size=${s.videoWidth}x${s.videoHeight} ` +
      `buffered=${JSON.stringify(s.buffered)} (${r.secs} s)`);
    out.push(`info: ${JSON.stringify(s.info)}`);
    for (const e of s.errors) out.push(`error: ${e}`);
    for (const n of s.notes) out.push(`note: ${n}`);
  }
  for (const l of [...new Set(r.diag.http)].slice(0, 20)) out.push(l);
  for (const l of [...new Set(r.diag.failed)].slice(0, 20)) out.push(l);
  // Collapse repeated console lines (retries print the same CORS / 404 message again and again).
  const cons = [];
  for (const l of r.diag.console) {
    const last = cons[cons.length - 1];
    if (last && last.text === l) last.n++; else if (!cons.some((x) => x.text === l)) cons.push({ text: l, n: 1 });
  }
  for (const c of cons.slice(-30)) out.push(c.n > 1 ? `${c.text} (x${c.n})` : c.text);
  const interesting = r.logLines.filter((l) => /WARN|ERROR|status=[45]\d\d|\b[45]\d\d\b/.test(l));
  const logs = interesting.length ? interesting.slice(0, 20) : r.logLines.slice(-8);
  for (const l of logs) out.push(`origin: ${l.slice(0, 400)}`);
  for (const l of out) console.log(`    ${l}`);
}

// ---------------------------------------------------------------- main
async function main() {
  const filters = process.argv.slice(2);
  const cases = CASES.filter((c) => !filters.length || filters.some((f) => c.name.includes(f)));
  if (!cases.length) {
    console.log(`no case matches ${JSON.stringify(filters)}; cases: ${CASES.map((c) => c.name).join(' ')}`);
    process.exit(2);
  }
  let passed = 0;
  let failed = 0;
  const done = new Set();
  const failAll = (why) => {
    for (const c of cases) {
      if (!done.has(c.name)) { console.log(`FAIL ${c.name}: ${why}`); failed++; }
    }
  };

  let originUrl = process.env.DRM_ORIGIN_URL && process.env.DRM_ORIGIN_URL.replace(/\/$/, '');
  let browser = null;
  try {
    const pageBase = await startPageServer();
    if (!originUrl) originUrl = (await startOrigin()).url;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required'],
    });
    cleanups.push(() => { browser.close().catch(() => {}); });
    if (VERBOSE) console.log(`# origin ${originUrl}, page server ${pageBase}, chromium ${browser.version()}`);
    for (const c of cases) {
      let r;
      try {
        r = await runCase(browser, pageBase, originUrl, c);
      } catch (e) {
        r = { reason: `harness: ${e && e.message ? e.message.split('\n')[0] : e}`, snap: null,
          diag: { console: [], http: [], failed: [] }, logLines: [], secs: '?' };
      }
      done.add(c.name);
      if (r.reason) {
        failed++;
        console.log(`FAIL ${c.name}: ${r.reason}`);
        printDiagnostics(r);
      } else {
        passed++;
        console.log(`PASS ${c.name}`);
        if (VERBOSE) printDiagnostics(r);
      }
    }
  } catch (e) {
    failAll(`setup failed: ${e && e.message ? e.message : e}`);
  }
  if (browser) await browser.close().catch(() => {});
  console.log(`${passed} passed, ${failed} failed`);
  cleanup();
  process.exit(failed ? 1 : 0);
}

main();
