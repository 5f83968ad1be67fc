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
// `FAIL name: reason` line per case (diagnostics indented below a FAIL), then `N passed, M failed`;
// a case marked with a known issue that shows exactly that issue's symptoms prints `KNOWN name:
// issue` instead, counted apart (`, K known issues`) and not a failure.
//
// Protected cases (`*-cenc-*`, `*-cbcs-*`, `*-aes128-*`) run against a second origin started with
// tests/browser/drm.toml (every asset protected, keys known to this script) and request the
// explicit variant manifests. Besides playing, each must prove it really decrypted:
//   cenc / cbcs: MediaKeys set on the <video>, 'encrypted' events from the init segments (shaka
//     given drm.clearKeys sets MediaKeys even for clear content), a ClearKey session whose key
//     statuses show the video and the audio KID `usable`, only protected segments
//     (init.<v>.<version>.mp4, N.<v>.<version>.m4s) fetched;
//     keys reach the player as the case says: directly (shaka drm.clearKeys, dash.js protection
//     data), from this script's ClearKey license server (hls.js) or as the raw key from the
//     origin's /.drm/key/<kid> (shaka-player, HLS KEYFORMAT="identity").
//   aes128: N.aes128.m4s segments fetched, the envelope key fetched from /.drm/key/<kid> (200,
//     16 bytes), no MediaKeys.
// A negative case plays DASH cenc with a wrong video key: it must NOT play cleanly.
// License cases (`*-token*`) run against a third origin started with tests/browser/license.toml
// (key_delivery = "token"; tokens minted by `drm-origin token`: entitled, valid without the
// group, expired an hour ago, or none at all). The player's ClearKey license server is the
// origin's own POST /.drm/clearkey (absolute URL: the page is on another port), the JWT sent as
// `Authorization: Bearer` (shaka request filter, dash.js httpRequestHeaders, hls.js
// licenseXhrSetup) or, for "none", no Authorization header: DASH cenc with shaka-player and
// dash.js, HLS cbcs (?keyformat=clearkey) with hls.js. shaka-player reads no
// KEYFORMAT="org.w3.clearkey" in HLS (its HLS parser has no ClearKey key format), so its HLS
// cases carry the token in the master URL into the identity key URIs (/.drm/key/<kid>?token=…).
//   entitled: plays as a cenc / cbcs case does, every KID licensed by a request answered 200.
//   refused (no group -> 403 missing_required_claim, expired -> 401 expired, none -> 401
//   missing_token): every license request reached the origin, was answered with exactly that
//   status and reason, carried a Bearer header (key URI token) exactly when the case has one; the
//   player reported the refusal with that status (shaka 6007 / 1001, dash.js 114, hls.js
//   keySystemLicenseRequestFailed) and no video frame was decoded.
// dash.js cannot use a ClearKey license server with the origin's MPD today: a KNOWN line (not a
// pass) says so as long as exactly those symptoms show, a FAIL once they change (KNOWN_ISSUES).
//
// Environment:
//   DRM_ORIGIN_BIN      server binary (default <repo>/target/release/drm-origin)
//   DRM_ORIGIN_ASSETS   assets folder (default <repo>/assets)
//   DRM_ORIGIN_URL      use an already running origin instead of starting one (clear cases)
//   DRM_ORIGIN_DRM_URL  same for the protected cases (it must use tests/browser/drm.toml's keys)
//   CHROMIUM            browser binary (default /usr/bin/chromium)
//   CASE_TIMEOUT_MS     per-case timeout (default 30000)
//   STALL_MS            fail a case whose clock stands still this long with data buffered ahead
//                       (default 10000)
//   NEGATIVE_TIMEOUT_MS timeout of the wrong-key and refused-license cases (default 12000)
//   VERBOSE=1           print diagnostics for passing cases too

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = process.env.DRM_ORIGIN_BIN || join(ROOT, 'target', 'release', 'drm-origin');
const ASSETS = process.env.DRM_ORIGIN_ASSETS || join(ROOT, 'assets');
// CHAINED=1: the same cases over chained policies (issue 11): every protected asset also carries
// a leaf license (pssh of our SystemID, MPD ContentProtection, HLS session key) that these
// players do not know; they must keep playing through ClearKey and /.drm/clearkey.
const CHAINED = process.env.CHAINED === '1';
const CHAIN_SCHEME = 'urn:uuid:b6e81ed0-de1c-4031-a1b6-cd77cd80fa2a';
function chainedCopy(file, policyHeader) {
  if (!CHAINED) return file;
  const dir = mkdtempSync(join(tmpdir(), 'drm-chained-'));
  let text = readFileSync(file, 'utf8').replace(policyHeader, `${policyHeader}\ndevice_licenses = "chained"`);
  if (!text.includes('[auth]')) text += '\n[auth]\nhmac_secret = "ZHJtLW9yaWdpbiBjaGFpbmVkIGJyb3dzZXIgdGVzdCAocHVibGljKSE="\n';
  text += `\n[devices]\nregistry = "sqlite:${dir}/devices.sqlite3"\nsecret_file = "${dir}/master.key"\n` +
    `signing_key = "${dir}/signing.pem"\n[licenses]\ndir = "${dir}/licenses"\n`;
  const out = join(dir, 'origin.toml');
  writeFileSync(out, text);
  return out;
}
const DRM_CONFIG = chainedCopy(join(HERE, 'drm.toml'), '[policies.drm]');
const LICENSE_CONFIG = chainedCopy(join(HERE, 'license.toml'), '[policies.lic]');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CASE_TIMEOUT_MS = Number(process.env.CASE_TIMEOUT_MS || 30000);
const VERBOSE = !!process.env.VERBOSE;
const TARGET_TIME = 4.0;
const START_TOLERANCE = 0.5; // seconds: playback must start (and stay buffered) from below this
const NEGATIVE_TIMEOUT_MS = Number(process.env.NEGATIVE_TIMEOUT_MS || 12000);
const STALL_MS = Number(process.env.STALL_MS || 10000); // buffered but not advancing this long = stalled

// Asset expectations: what every player must discover from the manifests.
const ASSET_EXPECT = {
  multi: { minVideoHeights: 3, minAudioLanguages: 2, hasAudio: true },
  progressive: { minVideoHeights: 1, minAudioLanguages: 0, hasAudio: true },
};
const CASES = [];
for (const asset of ['multi', 'progressive']) {
  CASES.push({ name: `dash-shaka-${asset}`, player: 'shaka', asset, manifest: 'manifest.mpd' });
  CASES.push({ name: `dash-dashjs-${asset}`, player: 'dashjs', asset, manifest: 'manifest.mpd' });
  CASES.push({ name: `hls-hlsjs-${asset}`, player: 'hlsjs', asset, manifest: 'master.m3u8' });
  CASES.push({ name: `hls-shaka-${asset}`, player: 'shaka', asset, manifest: 'master.m3u8' });
}
// Protected cases. keys: how the player gets the ClearKey keys —
//   'direct'  : {kidHex: keyHex} in the page (shaka drm.clearKeys, dash.js protection data)
//   'license' : this script's ClearKey license server (hls.js drmSystems licenseUrl)
//   'origin'  : none given; the player fetches them from the URIs in the playlist (/.drm/key/<kid>)
for (const asset of ['multi', 'progressive']) {
  for (const v of ['cenc', 'cbcs']) {
    const manifest = `manifest.${v}.mpd`;
    CASES.push({ name: `dash-${v}-shaka-${asset}`, player: 'shaka', asset, manifest, variant: v, keys: 'direct' });
    CASES.push({ name: `dash-${v}-dashjs-${asset}`, player: 'dashjs', asset, manifest, variant: v, keys: 'direct' });
  }
  CASES.push({ name: `hls-cbcs-hlsjs-${asset}`, player: 'hlsjs', asset, manifest: 'master.cbcs.m3u8?keyformat=clearkey', variant: 'cbcs', keys: 'license' });
  CASES.push({ name: `hls-cbcs-shaka-${asset}`, player: 'shaka', asset, manifest: 'master.cbcs.m3u8', variant: 'cbcs', keys: 'origin' });
  CASES.push({ name: `hls-aes128-hlsjs-${asset}`, player: 'hlsjs', asset, manifest: 'master.aes128.m3u8', variant: 'aes128', keys: 'origin' });
  CASES.push({ name: `hls-aes128-shaka-${asset}`, player: 'shaka', asset, manifest: 'master.aes128.m3u8', variant: 'aes128', keys: 'origin' });
}
// The README's hls.js recipe exactly as written: stock hls.js (no generateRequest hook), the
// origin's own /.drm/clearkey as licenseUrl, master.cbcs.m3u8?keyformat=clearkey, audio under its
// own KID. It stalled at t=0 before the init segments' common pssh named every KID (issue 13.5a).
for (const asset of ['multi', 'progressive']) {
  CASES.push({ name: `hls-cbcs-hlsjs-${asset}-readme`, player: 'hlsjs', asset, manifest: 'master.cbcs.m3u8?keyformat=clearkey', variant: 'cbcs', keys: 'origin-license', stock: true });
}
// HLS cenc (METHOD=SAMPLE-AES-CTR, non-RFC but read by both players): one asset is enough.
CASES.push({ name: 'hls-cenc-hlsjs-multi', player: 'hlsjs', asset: 'multi', manifest: 'master.cenc.m3u8', variant: 'cenc', keys: 'license' });
CASES.push({ name: 'hls-cenc-shaka-multi', player: 'shaka', asset: 'multi', manifest: 'master.cenc.m3u8', variant: 'cenc', keys: 'origin' });
// License service of the origin (license.toml): the player's ClearKey license server is the
// origin's POST /.drm/clearkey. token: which `Authorization: Bearer` the license requests carry —
//   'entitled' : groups=entitled, valid for 1 h                       -> plays
//   'nogroup'  : valid, but groups=basic                              -> 403 missing_required_claim
//   'expired'  : groups=entitled, expired an hour ago (beyond leeway) -> 401 expired
//   'none'     : no Authorization header at all                       -> 401 missing_token
// DASH cenc for shaka-player and dash.js; HLS cbcs for hls.js (?keyformat=clearkey, as in the
// hls.js cbcs case: hls.js needs the org.w3.clearkey key lines). The dash.js cases once stopped
// before any license request: dash.js passed the MPD ClearKey descriptor's <cenc:pssh> to the CDM
// as `keyids` init data, which Chromium rejects; the origin no longer writes that pssh.
const DENIED = {
  nogroup: { status: 403, reason: 'missing_required_claim' },
  expired: { status: 401, reason: 'expired' },
  none: { status: 401, reason: 'missing_token' },
};
for (const [proto, player, manifest, variant] of [
  ['dash', 'shaka', 'manifest.mpd', 'cenc'],
  ['dash', 'dashjs', 'manifest.mpd', 'cenc'],
  ['hls', 'hlsjs', 'master.cbcs.m3u8?keyformat=clearkey', 'cbcs'],
]) {
  for (const token of ['entitled', 'nogroup', 'expired', 'none']) {
    CASES.push({ name: `${proto}-${variant}-${player}-multi-token${token === 'entitled' ? '' : '-' + token}`,
      player, asset: 'multi', manifest, variant, keys: 'token', token, licenseDenied: DENIED[token] || null });
  }
}
// HLS with the token in the master URL: the origin writes it into the child playlist and key URIs,
// and shaka fetches the raw keys from /.drm/key/<kid>?token=… (KEYFORMAT="identity").
CASES.push({ name: 'hls-cbcs-shaka-multi-token', player: 'shaka', asset: 'multi', manifest: 'master.cbcs.m3u8',
  variant: 'cbcs', keys: 'origin', manifestToken: 'entitled' });
// The same with a refused token: the raw-key GETs are refused as a license POST is.
for (const token of ['nogroup', 'expired', 'none']) {
  CASES.push({ name: `hls-cbcs-shaka-multi-token-${token}`, player: 'shaka', asset: 'multi', manifest: 'master.cbcs.m3u8',
    variant: 'cbcs', keys: 'origin', manifestToken: token, licenseDenied: DENIED[token] });
}
// Negative: the right KIDs, but the video key is wrong. Must not play cleanly (see checkNegative).
CASES.push({ name: 'dash-cenc-shaka-multi-wrongkey', player: 'shaka', asset: 'multi', manifest: 'manifest.cenc.mpd',
  variant: 'cenc', keys: 'direct', wrongVideoKey: true });

// ---------------------------------------------------------------- keys of drm.toml
// A reader for the small TOML subset drm.toml uses: `[keys.NAME]` tables with `kid = "…"` /
// `key = "…"` lines, and the policy's `keys = { video = "…", audio = "…", envelope = "…" }`.
function readDrmKeys(file) {
  const named = {};
  let roles = null;
  let table = null;
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    if (line.startsWith('[[')) { table = null; continue; }
    let m = /^\[([^\]]+)\]$/.exec(line);
    if (m) { table = m[1].trim(); continue; }
    m = /^(kid|key)\s*=\s*"([^"]*)"$/.exec(line);
    if (m && table && table.startsWith('keys.')) {
      (named[table.slice(5)] ||= {})[m[1]] = m[2].replace(/-/g, '').toLowerCase();
      continue;
    }
    m = /^keys\s*=\s*\{(.*)\}$/.exec(line);
    if (m && table && table.startsWith('policies.')) {
      roles = {};
      for (const [, k, v] of m[1].matchAll(/(\w+)\s*=\s*"([^"]*)"/g)) roles[k] = v;
    }
  }
  const pick = (role, name) => {
    const k = named[name];
    if (!k || !/^[0-9a-f]{32}$/.test(k.kid || '') || !/^[0-9a-f]{32}$/.test(k.key || '')) {
      throw new Error(`${file}: ${role} key "${name}" missing or not 16-byte hex kid/key`);
    }
    return { kid: k.kid, key: k.key };
  };
  if (!roles || !roles.video || !roles.envelope) throw new Error(`${file}: policy keys = { video, envelope } missing`);
  return {
    video: pick('video', roles.video),
    audio: pick('audio', roles.audio || roles.video), // audio defaults to the video key
    envelope: pick('envelope', roles.envelope),
  };
}
const b64url = (h) => Buffer.from(h, 'hex').toString('base64url');

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
// Each origin: { url, log } where log collects its stderr lines.
function startOrigin(extraArgs = []) {
  const serverLog = [];
  return new Promise((resolveP, reject) => {
    if (!existsSync(BIN)) return reject(new Error(`${BIN} missing: run \`cargo build --release\` first`));
    const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' };
    const child = spawn(BIN, ['serve', '--assets', ASSETS, '--listen', '127.0.0.1:0', ...extraArgs], {
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
      if (m && !done) { done = true; clearTimeout(timer); resolveP({ url: m[1], log: serverLog }); }
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

// A development token from `drm-origin token --config license.toml ARGS`.
function mintToken(args) {
  const out = spawnSync(BIN, ['token', '--config', LICENSE_CONFIG, ...args], { cwd: ROOT, encoding: 'utf8' });
  const token = (out.stdout || '').trim();
  if (out.status !== 0 || token.split('.').length !== 3) {
    throw new Error(`drm-origin token ${args.join(' ')}: exit ${out.status}: ${(out.stderr || '').slice(0, 300)}`);
  }
  return token;
}

// ---------------------------------------------------------------- page server
// ClearKey license requests answered by the page server, per case: {kids, answered}.
const licenseLog = new Map();

function startPageServer(drmKeys) {
  for (const rel of Object.values(LIBS)) {
    if (!existsSync(join(HERE, rel))) {
      throw new Error(`${rel} missing: run \`npm ci --prefix tests/browser\` first`);
    }
  }
  const files = { ...LIBS, ...PAGES };
  const server = createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const path = u.pathname;
    if (path === '/favicon.ico') { res.writeHead(204); return res.end(); }
    if (path === '/license' && req.method === 'POST') return license(req, res, u.searchParams.get('case') || '?');
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
  // W3C ClearKey license server (spec-notes §5): request {"kids":[b64url…],"type":…} from the
  // CDM, answer a JWK set with the keys of drm.toml that were asked for. Same origin as the page,
  // so no CORS. These are "keys given to the player directly": the origin's own license
  // endpoint comes later.
  function license(req, res, caseName) {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const rec = { kids: [], answered: [], error: null };
      (licenseLog.get(caseName) || licenseLog.set(caseName, []).get(caseName)).push(rec);
      let kids = [];
      try {
        kids = JSON.parse(body).kids;
        if (!Array.isArray(kids)) throw new Error('no kids array');
      } catch (e) {
        rec.error = `bad license request ${JSON.stringify(body.slice(0, 200))}: ${e.message}`;
        res.writeHead(400, { 'content-type': 'text/plain' });
        return res.end(rec.error);
      }
      rec.kids = kids.map((k) => Buffer.from(k, 'base64url').toString('hex'));
      const all = drmKeys ? [drmKeys.video, drmKeys.audio, drmKeys.envelope] : [];
      const keys = [];
      for (const kidHex of rec.kids) {
        const k = all.find((x) => x.kid === kidHex);
        if (k) { keys.push({ kty: 'oct', kid: b64url(k.kid), k: b64url(k.key) }); rec.answered.push(kidHex); }
      }
      const out = Buffer.from(JSON.stringify({ keys, type: 'temporary' }));
      res.writeHead(keys.length ? 200 : 403, { 'content-type': 'application/json', 'content-length': out.length });
      res.end(out);
    });
  }
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

async function runCase(browser, pageBase, origin, c, drmKeys) {
  const originUrl = origin.url;
  const serverLog = origin.log;
  const diag = { console: [], http: [], failed: [] };
  const fetched = []; // origin responses: { path, status, length }
  const originLicenses = []; // POST /.drm/clearkey on the origin: { status, kids (hex), type, bearer, error, reason }
  const bodies = []; // pending reads of refused license / key answers
  // The origin's refusal {"error":…,"reason":…} into rec.error / rec.reason.
  const readReason = (r, rec) => bodies.push(r.text().then((t) => {
    try { const j = JSON.parse(t); rec.error = j.error; rec.reason = j.reason; } catch { rec.body = t.slice(0, 200); }
  }, (e) => { rec.body = `<unreadable: ${e.message}>`; }));
  const context = await browser.newContext({ viewport: { width: 800, height: 450 } });
  const page = await context.newPage();
  page.on('console', (m) => diag.console.push(`console.${m.type()}: ${m.text()}`.slice(0, 800)));
  page.on('pageerror', (e) => diag.console.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.url().startsWith(originUrl + '/.drm/clearkey') && r.request().method() === 'POST') {
      let kids = [];
      let type = null;
      try {
        const body = JSON.parse(r.request().postData() || '{}');
        kids = (body.kids || []).map((k) => Buffer.from(k, 'base64url').toString('hex'));
        type = body.type || null;
      } catch { /* recorded with no kids */ }
      // What the origin said and whether the request carried a Bearer header: a denied case must
      // be denied for its own reason (an expired token, not e.g. a mangled one).
      const rec = { status: r.status(), kids, type, bearer: /^Bearer \S/.test(r.request().headers().authorization || '') };
      originLicenses.push(rec);
      if (r.status() !== 200) readReason(r, rec);
    }
    if (r.status() >= 400) diag.http.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
    if (r.url().startsWith(originUrl + '/') && r.request().method() === 'GET') {
      const len = r.headers()['content-length'];
      const rec = { path: r.url().slice(originUrl.length), status: r.status(), length: len === undefined ? null : Number(len) };
      fetched.push(rec);
      if (rec.path.startsWith('/.drm/') && r.status() !== 200) readReason(r, rec);
    }
  });
  page.on('requestfailed', (r) => {
    diag.failed.push(`request failed: ${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`);
  });
  const logStart = serverLog.length;
  if (c.manifestToken && !(c.manifestToken in origin.tokens)) throw new Error(`unknown token ${c.manifestToken}`);
  const src = `${originUrl}/${c.asset}/${c.manifest}` +
    (c.manifestToken && origin.tokens[c.manifestToken] ? `?token=${encodeURIComponent(origin.tokens[c.manifestToken])}` : '');
  let url = `${pageBase}/player.html?player=${c.player}&src=${encodeURIComponent(src)}`;
  if (c.stock) url += '&stock=1';
  if (c.keys === 'direct') {
    const k = { [drmKeys.video.kid]: c.wrongVideoKey ? wrongKey(drmKeys.video.key) : drmKeys.video.key };
    k[drmKeys.audio.kid] = drmKeys.audio.key;
    url += `&keys=${encodeURIComponent(JSON.stringify(k))}`;
  } else if (c.keys === 'license') {
    url += `&license=${encodeURIComponent(`${pageBase}/license?case=${c.name}`)}`;
  } else if (c.keys === 'origin-license') {
    url += `&license=${encodeURIComponent(`${originUrl}/.drm/clearkey`)}`;
  } else if (c.keys === 'token') {
    url += `&license=${encodeURIComponent(`${originUrl}/.drm/clearkey`)}`;
    if (!(c.token in origin.tokens)) throw new Error(`unknown token ${c.token}`);
    if (origin.tokens[c.token]) url += `&token=${encodeURIComponent(origin.tokens[c.token])}`;
  }
  const timeout = c.wrongVideoKey || c.licenseDenied ? NEGATIVE_TIMEOUT_MS : CASE_TIMEOUT_MS;
  const started = Date.now();
  let snap = null;
  let reason = null;
  let lastTime = -1;
  let lastProgress = Date.now();
  try {
    await page.goto(url, { waitUntil: 'load', timeout: 10000 });
    for (;;) {
      snap = await page.evaluate(() => window.T.snapshot());
      if (snap.currentTime !== lastTime) { lastTime = snap.currentTime; lastProgress = Date.now(); }
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
      // Data buffered ahead but the clock does not move (e.g. encrypted media without a usable
      // key): no need to wait for the full timeout.
      const ahead = snap.buffered.some(([a, b]) => a <= snap.currentTime + 0.1 && b >= snap.currentTime + 1);
      if (ahead && Date.now() - lastProgress > STALL_MS) {
        reason = `stalled: currentTime=${snap.currentTime.toFixed(3)} has not advanced for ${STALL_MS} ms although ` +
          `buffered=${JSON.stringify(snap.buffered)} readyState=${snap.readyState} frames=${snap.totalVideoFrames}`;
        break;
      }
      if (Date.now() - started > timeout) {
        reason = `timeout after ${timeout} ms: currentTime=${snap.currentTime.toFixed(3)} ` +
          `readyState=${snap.readyState} paused=${snap.paused} frames=${snap.totalVideoFrames} ` +
          `buffered=${JSON.stringify(snap.buffered)} state=${snap.state}`;
        break;
      }
      await sleep(200);
    }
  } catch (e) {
    reason = `harness: ${e && e.message ? e.message.split('\n')[0] : e}`;
  }
  await Promise.allSettled(bodies); // before the context closes and takes the bodies with it
  await context.close().catch(() => {});
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const licenses = licenseLog.get(c.name) || [];
  const playerReason = reason;
  if (c.variant && snap) {
    if (c.wrongVideoKey) reason = checkNegative(c, snap, fetched, drmKeys, reason);
    else if (c.licenseDenied) reason = checkLicenseDenied(c, snap, c.keys === 'token' ? originLicenses : fetched.filter((f) => f.path.startsWith('/.drm/key/')), reason);
    else if (!reason) reason = checkProtection(c, snap, fetched, licenses, drmKeys, originLicenses);
  }
  let knownIssue = null;
  if (c.knownIssue) {
    // A known issue must show exactly its own symptoms; anything else (including a pass) fails
    // the case, so that the marker goes as soon as the cause is fixed and the real checks run.
    const issue = KNOWN_ISSUES[c.knownIssue];
    const differs = snap ? issue.differs(snap, playerReason, originLicenses) : 'no snapshot';
    if (differs) {
      reason = `known issue ${c.knownIssue} did not reproduce (${differs}); the case's own verdict: ` +
        `${reason || 'PASS'}. Remove knownIssue from the case once the cause is fixed.`;
    } else {
      knownIssue = `${c.knownIssue}: ${issue.what}`;
      c.negativeReason = playerReason;
      reason = null;
    }
  }
  diag.protection = protectionSummary(snap, fetched, licenses) + `; origin licenses ${JSON.stringify(originLicenses)}`;
  if (reason && c.player === 'hlsjs' && (c.variant === 'cenc' || c.variant === 'cbcs')) {
    try { diag.hints = await hlsjsKeyHints(originUrl, c); } catch (e) { diag.hints = [`hint check failed: ${e.message}`]; }
  }
  return { reason, knownIssue, snap, diag, logLines: serverLog.slice(logStart), secs };
}

// Flip every bit of the first key byte: same KID, wrong key.
function wrongKey(keyHex) {
  return ((parseInt(keyHex.slice(0, 2), 16) ^ 0xff).toString(16).padStart(2, '0')) + keyHex.slice(2);
}

const isSegment = (p) => /\/(init(\.[a-z0-9]+)?\.v[0-9a-f]{8}\.mp4|\d+(\.[a-z0-9]+)?\.v[0-9a-f]{8}\.m4s)(\?|$)/.test(p);
const ok = (f) => f.status === 200 || f.status === 206;

// Key statuses the CDM reported for a KID, over all sessions.
function keyStatuses(snap, kid) {
  return (snap.eme && snap.eme.sessions || []).map((x) => x.statuses[kid]).filter(Boolean);
}

// Did the playback really go through decryption, with the keys from where the case says?
function checkProtection(c, snap, fetched, licenses, keys, originLicenses = []) {
  const v = c.variant;
  const segs = fetched.filter((f) => isSegment(f.path));
  if (v === 'cenc' || v === 'cbcs') {
    const notV = segs.filter((f) => !new RegExp(`/(init|\\d+)\\.${v}\\.v[0-9a-f]{8}\\.(mp4|m4s)(\\?|$)`).test(f.path));
    if (notV.length) return `fetched segments that are not ${v}: ${notV.slice(0, 3).map((f) => f.path).join(' ')}`;
    if (!segs.some((f) => ok(f) && new RegExp(`/\\d+\\.${v}\\.v[0-9a-f]{8}\\.m4s`).test(f.path))) return `no ${v} media segment was fetched`;
    if (!snap.eme.mediaKeys) return `played without MediaKeys on the <video> (EME never used): eme=${JSON.stringify(snap.eme)}`;
    // MediaKeys and 'usable' keys alone prove nothing: shaka given drm.clearKeys sets MediaKeys
    // and licenses the KIDs for clear content too. Chromium fires 'encrypted' only for init
    // segments that carry protection, and then hands every sample to the CDM.
    if (!snap.eme.encrypted.length) return 'the <video> never fired an "encrypted" event: the init segments played carry no protection';
    const roles = [['video', keys.video.kid]];
    if (ASSET_EXPECT[c.asset] && ASSET_EXPECT[c.asset].hasAudio) roles.push(['audio', keys.audio.kid]);
    for (const [role, kid] of roles) {
      const st = keyStatuses(snap, kid);
      if (!st.includes('usable')) {
        return `the CDM never reported the ${role} KID ${kid} 'usable' (statuses ${JSON.stringify(st)}; ` +
          `sessions ${JSON.stringify(snap.eme.sessions)})`;
      }
      if (c.keys === 'license' && !licenses.some((l) => l.answered.includes(kid))) {
        return `no ClearKey license request asked for the ${role} KID ${kid} (requests: ${JSON.stringify(licenses)})`;
      }
      if ((c.keys === 'token' || c.keys === 'origin-license') && !originLicenses.some((l) => l.status === 200 && l.kids.includes(kid))) {
        return `no license request to the origin's /.drm/clearkey for the ${role} KID ${kid} was answered 200 ` +
          `(requests: ${JSON.stringify(originLicenses)})`;
      }
      const keyPath = (f) => (c.manifestToken ? f.path.split('?')[0] : f.path);
      if (c.keys === 'origin' && !fetched.some((f) => keyPath(f) === `/.drm/key/${kid}` && f.status === 200)) {
        return `the ${role} key was not fetched from the origin's /.drm/key/${kid}`;
      }
      if (c.manifestToken && !fetched.some((f) => f.path.startsWith(`/.drm/key/${kid}?token=`) && f.status === 200)) {
        return `the ${role} key was not fetched with the carried token (/.drm/key/${kid}?token=…)`;
      }
    }
    return null;
  }
  if (v === 'aes128') {
    const bad = segs.filter((f) => !/\/(init\.v[0-9a-f]{8}\.mp4|\d+\.aes128\.v[0-9a-f]{8}\.m4s)(\?|$)/.test(f.path));
    if (bad.length) return `fetched segments that are not AES-128 media / clear init: ${bad.slice(0, 3).map((f) => f.path).join(' ')}`;
    if (!segs.some((f) => ok(f) && /\d+\.aes128\.v[0-9a-f]{8}\.m4s/.test(f.path))) return 'no .aes128.m4s segment was fetched';
    const k = fetched.filter((f) => f.path === `/.drm/key/${keys.envelope.kid}`);
    if (!k.some((f) => f.status === 200 && (f.length === null || f.length === 16))) {
      return `the envelope key was not fetched from /.drm/key/${keys.envelope.kid} (200, 16 bytes): ${JSON.stringify(k)}`;
    }
    if (snap.eme.mediaKeys) return 'MediaKeys set on the <video> for AES-128 content (expected player-side decryption)';
    return null;
  }
  return `unknown variant ${v}`;
}

// The wrong-key case must fail, and fail because of the key: EME was set up, the CDM took the
// (wrong) video key, protected segments were served — and still no clean playback.
function checkNegative(c, snap, fetched, keys, reason) {
  if (!reason) {
    return `played to t=${snap.currentTime.toFixed(3)} with a WRONG video key ` +
      `(frames=${snap.totalVideoFrames}): the video is not encrypted with the configured key`;
  }
  // Chromium's decoder rejects the garbage a wrong key makes of a key frame (MediaError 3,
  // shaka 3016); a stall without a single decoded frame is the other acceptable outcome.
  const decodeError = /PIPELINE_ERROR_DECODE|code=3016|MediaError code=3/.test(reason);
  const noFrames = /^(timeout|stalled)/.test(reason) && !(snap.totalVideoFrames > 0);
  if (!decodeError && !noFrames) return `failed, but not by a decode error or a stall without frames: ${reason}`;
  if (!snap.eme.mediaKeys) return `failed before EME was set up (${reason})`;
  const st = keyStatuses(snap, keys.video.kid);
  if (!st.includes('usable')) return `failed, but the CDM never took the video key (statuses ${JSON.stringify(st)}): ${reason}`;
  if (!fetched.some((f) => ok(f) && /\/\d+\.cenc\.v[0-9a-f]{8}\.m4s/.test(f.path))) return `failed before any cenc media segment was served: ${reason}`;
  c.negativeReason = reason;
  return null;
}

// How each player reports a license (or key) request the server refused, for a refusal with HTTP
// status `st`. The status must be in the report: a failure for another reason (CORS, a network
// error, a decode error, a key session that never started) does not count.
//   shaka  DASH: 6007 LICENSE_REQUEST_FAILED wrapping 1001 BAD_HTTP_STATUS [uri, status, text,
//          headers, request type 2 LICENSE, …]; HLS identity key: load() rejected with 1001
//          BAD_HTTP_STATUS for the /.drm/key URI, request type 6 KEY (shaka retries once).
//   dash.js: error 114 MEDIA_KEY_MESSAGE_LICENSER_ERROR "… XHR complete. status is "…" (st)",
//          after its own retries (3, 1 s apart): every attempt reaches the origin.
//   hls.js: fatal keySystemError keySystemLicenseRequestFailed with response.code=st (hls.js
//          does not retry 4xx).
const LICENSE_FAILURE = {
  shaka: (st, key) => (key
    ? new RegExp(`code=1001 category=1 .*data=\\["[^"]*/\\.drm/key/[0-9a-f]{32}[^"]*",${st},.*\\},6,"`)
    : new RegExp(`code=6007 .*"code":1001,"data":\\["[^"]*/\\.drm/clearkey",${st},.*\\},2,"`)),
  dashjs: (st) => new RegExp(`dash\\.js error code=114 .*XHR complete\\. status is .*\\(${st}\\)`),
  hlsjs: (st) => new RegExp(`hls\\.js FATAL error type=keySystemError details=keySystemLicenseRequestFailed .*response\\.code=${st} `),
};

// A refused license must stop playback: every license request (POST /.drm/clearkey, or for
// the HLS identity cases the GET /.drm/key/<kid>) reached the origin and was answered with the
// expected status and reason (never 200), carried a Bearer header exactly when the case has a
// token, the player reported that refusal (LICENSE_FAILURE) and no video frame was decoded.
function checkLicenseDenied(c, snap, requests, reason) {
  const want = c.licenseDenied;
  if (!reason) {
    return `played to t=${snap.currentTime.toFixed(3)} although the token is ${c.token || c.manifestToken} ` +
      `(license requests ${JSON.stringify(requests)})`;
  }
  if (!requests.length) return `failed before any license request reached the origin: ${reason}`;
  if (requests.some((l) => l.status === 200)) return `the origin granted a license: ${JSON.stringify(requests)}`;
  const bad = requests.filter((l) => l.status !== want.status || l.reason !== want.reason);
  if (bad.length) {
    return `license requests answered ${JSON.stringify(bad.map((l) => [l.status, l.reason || l.body]))}, ` +
      `expected ${want.status} ${want.reason}`;
  }
  if (c.keys === 'token') {
    const bearer = !!(c.token && c.token !== 'none');
    if (requests.some((l) => l.bearer !== bearer)) {
      return `license requests ${bearer ? 'without' : 'with'} an Authorization: Bearer header: ${JSON.stringify(requests)}`;
    }
  } else {
    // identity keys: the token rides in the key URI (?token=) or, for 'none', nowhere.
    const carried = c.manifestToken !== 'none';
    if (requests.some((l) => /[?&]token=/.test(l.path) !== carried)) {
      return `key requests ${carried ? 'without' : 'with'} a token: ${JSON.stringify(requests.map((l) => l.path.slice(0, 60)))}`;
    }
  }
  const failure = LICENSE_FAILURE[c.player](want.status, c.keys !== 'token');
  if (!snap.errors.some((e) => failure.test(e))) {
    return `failed, but ${c.player} did not report the refused license (${failure}): ${reason}`;
  }
  if (snap.totalVideoFrames > 0) return `decoded ${snap.totalVideoFrames} video frames without a license`;
  c.negativeReason = reason;
  return null;
}

// Cases that cannot pass today for a reason outside the test, each with the exact symptoms it
// must show (differs() returns what does not match, or null). See the case's knownIssue.
const KNOWN_ISSUES = {
  // None today. The last one, 'dashjs-clearkey-pssh' (dash.js 5.2.1 DefaultProtectionModel
  // createKeySession passed the MPD ClearKey descriptor's <cenc:pssh> box as `keyids` init data,
  // which Chromium rejects: no license request), was fixed in the origin's MPD.
};

// Why hls.js cannot use the EXT-X-KEY tags of the first media playlist for ClearKey, from its
// source (1.7): src/loader/fragment.ts `get decryptdata()` prefers a KEYFORMAT="identity" key
// (kept for MPEG-TS SAMPLE-AES) over every other key format, so with an identity SAMPLE-AES tag
// in the playlist hls.js never uses EME for fMP4 (and stalls); src/loader/level-key.ts
// getDecryptData() takes the first 16 bytes of a base64 data: URI as the key id of a
// KEYFORMAT="org.w3.clearkey" tag (overriding KEYID); eme-controller.ts shares key sessions per
// key URI.
async function hlsjsKeyHints(originUrl, c) {
  const hints = [];
  const base = `${originUrl}/${c.asset}/`;
  const master = await (await fetch(base + c.manifest)).text();
  const lines = master.split('\n').map((l) => l.trim());
  const i = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF'));
  const mediaUri = i >= 0 ? lines.slice(i + 1).find((l) => l && !l.startsWith('#')) : null;
  if (!mediaUri) return [`no media playlist in ${c.manifest}`];
  const media = await (await fetch(new URL(mediaUri, base + c.manifest))).text();
  const tags = media.split('\n').filter((l) => l.startsWith('#EXT-X-KEY:'));
  const attr = (t, k) => { const m = new RegExp(`[:,]${k}=("([^"]*)"|[^,]*)`).exec(t); return m ? (m[2] !== undefined ? m[2] : m[1]) : null; };
  if (tags.some((t) => attr(t, 'METHOD') === 'SAMPLE-AES' && (attr(t, 'KEYFORMAT') || 'identity') === 'identity')) {
    hints.push(`${mediaUri} has an EXT-X-KEY METHOD=SAMPLE-AES KEYFORMAT="identity" tag: hls.js prefers it ` +
      `(fragment.ts decryptdata) and never uses EME for fMP4; hls.js needs a playlist without it`);
  }
  const ck = tags.filter((t) => attr(t, 'KEYFORMAT') === 'org.w3.clearkey');
  if (!ck.length) hints.push(`${mediaUri} has no KEYFORMAT="org.w3.clearkey" EXT-X-KEY tag`);
  for (const t of ck) {
    const uri = attr(t, 'URI') || '';
    const m = /^data:[^,]*;base64,(.*)$/.exec(uri);
    if (m) {
      const bytes = Buffer.from(m[1], 'base64');
      if (bytes.length !== 16) {
        hints.push(`org.w3.clearkey URI data is ${bytes.length} bytes: hls.js (level-key.ts) uses its first 16 bytes ` +
          `${bytes.subarray(0, 16).toString('hex')} as the key id instead of KEYID=${attr(t, 'KEYID')}; ` +
          'put exactly the 16 KID bytes in the data: URI');
      }
    }
  }
  return hints;
}

function protectionSummary(snap, fetched, licenses) {
  const keysFetched = fetched.filter((f) => f.path.startsWith('/.drm/')).map((f) => `${f.path}=${f.status}`);
  const segs = fetched.filter((f) => isSegment(f.path));
  const kinds = [...new Set(segs.map((f) => f.path.replace(/^.*\//, '').replace(/^\d+/, 'N')))];
  return `segments ${JSON.stringify(kinds)} (${segs.length} fetched); keys ${JSON.stringify(keysFetched)}; ` +
    `licenses ${JSON.stringify(licenses)}; eme ${snap ? JSON.stringify(snap.eme) : '?'}`;
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
  for (const h of r.diag.hints || []) out.push(`hint: ${h}`);
  if (r.diag.protection) out.push(`protection: ${r.diag.protection.slice(0, 3000)}`);
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
  let known = 0;
  const done = new Set();
  const failAll = (why) => {
    for (const c of cases) {
      if (!done.has(c.name)) { console.log(`FAIL ${c.name}: ${why}`); failed++; }
    }
  };

  const given = (u) => u && { url: u.replace(/\/$/, ''), log: [] };
  let origin = given(process.env.DRM_ORIGIN_URL);
  let drmOrigin = given(process.env.DRM_ORIGIN_DRM_URL);
  let browser = null;
  try {
    const needDrm = cases.some((c) => c.variant && c.keys !== 'token' && !c.manifestToken);
    const needToken = cases.some((c) => (c.keys === 'token' || c.manifestToken));
    const drmKeys = needDrm ? readDrmKeys(DRM_CONFIG) : null;
    const tokenKeys = needToken ? readDrmKeys(LICENSE_CONFIG) : null;
    const pageBase = await startPageServer(drmKeys);
    if (!origin && cases.some((c) => !c.variant)) origin = await startOrigin();
    // A protected origin that does not start fails the protected cases only.
    let drmOriginError = null;
    if (!drmOrigin && needDrm) {
      try {
        drmOrigin = await startOrigin(['--config', DRM_CONFIG]);
      } catch (e) {
        drmOriginError = `protected origin (--config ${DRM_CONFIG}) failed to start: ${e && e.message ? e.message : e}`;
      }
    }
    let tokenOrigin = null;
    let tokenOriginError = null;
    if (needToken) {
      try {
        tokenOrigin = await startOrigin(['--config', LICENSE_CONFIG]);
        tokenOrigin.tokens = {
          entitled: mintToken(['--sub', 'alice', '--groups', 'entitled', '--ttl', '1h']),
          nogroup: mintToken(['--sub', 'bob', '--groups', 'basic', '--ttl', '1h']),
          // An hour in the past: beyond any clock-skew leeway the origin grants ([auth]
          // leeway_secs, 30 s by default, at most 600; a token a few seconds past exp is still
          // accepted), and asserted below, so the case cannot turn into a test of something else.
          expired: mintToken(['--sub', 'carol', '--groups', 'entitled', '--ttl=-1h']),
          none: null,
        };
        const exp = JSON.parse(Buffer.from(tokenOrigin.tokens.expired.split('.')[1], 'base64url').toString()).exp;
        if (!(exp < Date.now() / 1000 - 600)) throw new Error(`the "expired" token is not expired: exp=${exp}`);
      } catch (e) {
        tokenOriginError = `license origin (--config ${LICENSE_CONFIG}) failed: ${e && e.message ? e.message : e}`;
      }
    }
    // Chained mode proves nothing unless the leaf really is in what the players read.
    if (CHAINED) {
      for (const [o, path] of [[drmOrigin, '/multi/manifest.cenc.mpd'], [drmOrigin, '/multi/master.cbcs.m3u8'],
        [tokenOrigin, '/multi/manifest.mpd']]) {
        if (!o) continue;
        const text = await (await fetch(o.url + path)).text();
        if (!text.includes(CHAIN_SCHEME)) throw new Error(`CHAINED=1 but ${path} signals no leaf license`);
      }
    }
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required'],
    });
    cleanups.push(() => { browser.close().catch(() => {}); });
    if (VERBOSE) {
      console.log(`# origin ${origin && origin.url}, protected origin ${drmOrigin && drmOrigin.url}, ` +
        `page server ${pageBase}, chromium ${browser.version()}`);
    }
    for (const c of cases) {
      let r;
      const caseError = (c.keys === 'token' || c.manifestToken) ? tokenOriginError : c.variant ? drmOriginError : null;
      if (caseError) {
        done.add(c.name);
        failed++;
        console.log(`FAIL ${c.name}: ${caseError}`);
        continue;
      }
      try {
        r = (c.keys === 'token' || c.manifestToken)
          ? await runCase(browser, pageBase, tokenOrigin, c, tokenKeys)
          : await runCase(browser, pageBase, c.variant ? drmOrigin : origin, c, drmKeys);
      } catch (e) {
        r = { reason: `harness: ${e && e.message ? e.message.split('\n')[0] : e}`, snap: null,
          diag: { console: [], http: [], failed: [] }, logLines: [], secs: '?' };
      }
      done.add(c.name);
      if (r.reason) {
        failed++;
        console.log(`FAIL ${c.name}: ${r.reason}`);
        printDiagnostics(r);
      } else if (r.knownIssue) {
        known++;
        console.log(`KNOWN ${c.name}: ${r.knownIssue}`);
        if (VERBOSE) printDiagnostics(r);
      } else {
        passed++;
        console.log(`PASS ${c.name}`);
        if (VERBOSE && c.negativeReason) console.log(`    (failed as expected: ${c.negativeReason.slice(0, 300)})`);
        if (VERBOSE) printDiagnostics(r);
      }
    }
  } catch (e) {
    failAll(`setup failed: ${e && e.message ? e.message : e}`);
  }
  if (browser) await browser.close().catch(() => {});
  console.log(`${passed} passed, ${failed} failed${known ? `, ${known} known issues (KNOWN lines)` : ''}`);
  cleanup();
  process.exit(failed ? 1 : 0);
}

main();
