#!/usr/bin/env node
// The origin's own demo player page (/player/{asset}) in headless Chromium.
//
//   node tests/browser/player_page.mjs
//
// Starts drm-origin on the shipped assets with tests/browser/license.toml (every asset protected,
// keys delivered by token), mints tokens with `drm-origin token`, opens the page as a user would
// (`/player/multi?protocol=…&token=…&autoplay=1`) and judges it twice: by what the browser really
// did (requests on the wire, their statuses, frames decoded, no request leaving the origin) and
// by the self-check the page shows (window.drmCheck and the table cells), which must agree:
//   * entitled, DASH: the page lists the signalled systems and the video and audio KIDs, the
//     license POST is answered 200 with both KIDs, EME uses org.w3.clearkey, playback passes 4 s;
//   * entitled, HLS cbcs: the token rides on the playlist URL into the key URIs, both raw keys are
//     fetched (200), playback passes 4 s;
//   * a token without the group: the page shows the 403 and the origin's reason, no frame decoded;
//   * no token: 401 missing_token shown, no frame decoded;
//   * the page of an unknown asset is 404; the page carries a CSP; shaka-player's library is
//     served by the origin itself.
// Env: DRM_ORIGIN_BIN (server binary), CHROMIUM (default /usr/bin/chromium).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = process.env.DRM_ORIGIN_BIN || join(ROOT, 'target', 'release', 'drm-origin');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CONFIG = join(HERE, 'license.toml');
const TARGET_TIME = 4;
const CASE_TIMEOUT_MS = 40000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The KIDs of license.toml's video and audio keys (hex, no dashes).
function configKids() {
  const text = readFileSync(CONFIG, 'utf8');
  const kid = (name) => {
    const m = new RegExp(`\\[keys\\.${name}\\][^\\[]*?kid\\s*=\\s*"([^"]+)"`).exec(text);
    if (!m) throw new Error(`no [keys.${name}] kid in ${CONFIG}`);
    return m[1].replace(/-/g, '').toLowerCase();
  };
  return { video: kid('vid'), audio: kid('aud') };
}

function startOrigin() {
  return new Promise((resolveP, reject) => {
    if (!existsSync(BIN)) return reject(new Error(`${BIN} missing: run \`cargo build --release\` first`));
    const child = spawn(BIN, ['serve', '--assets', join(ROOT, 'assets'), '--listen', '127.0.0.1:0', '--config', CONFIG],
      { cwd: ROOT, env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = [];
    createInterface({ input: child.stderr }).on('line', (l) => log.push(l));
    createInterface({ input: child.stdout }).on('line', (l) => {
      const m = /^drm-origin listening on (http:\/\/\S+?)\/?$/.exec(l.trim());
      if (m) resolveP({ url: m[1], log, child });
    });
    child.on('exit', (code) => reject(new Error(`origin exited (${code}): ${log.slice(-10).join('\n')}`)));
    setTimeout(() => reject(new Error('origin did not start within 30 s')), 30000);
  });
}

function mint(args) {
  const out = spawnSync(BIN, ['token', '--config', CONFIG, ...args], { cwd: ROOT, encoding: 'utf8' });
  const t = (out.stdout || '').trim();
  if (out.status !== 0 || t.split('.').length !== 3) throw new Error(`drm-origin token failed: ${out.stderr}`);
  return t;
}

async function openPage(browser, origin, query) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const wire = []; // every response: {url, status, method}
  const console_ = [];
  page.on('response', (r) => wire.push({ url: r.url(), status: r.status(), method: r.request().method() }));
  page.on('requestfailed', (r) => wire.push({ url: r.url(), status: 0, method: r.request().method() }));
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(`${origin.url}/player/multi?${query}`, { waitUntil: 'load', timeout: 15000 });
  return { context, page, wire, console: console_ };
}

// Polls the page until playback passes TARGET_TIME, the page reports an error, or the timeout.
async function settle(page, expectFailure) {
  const started = Date.now();
  let check = null;
  for (;;) {
    check = await page.evaluate(() => JSON.parse(JSON.stringify(window.drmCheck)));
    if (check.errors.length) { await sleep(500); return page.evaluate(() => JSON.parse(JSON.stringify(window.drmCheck))); }
    if (!expectFailure && check.playback.time > TARGET_TIME) return check;
    if (Date.now() - started > CASE_TIMEOUT_MS) return check;
    await sleep(250);
  }
}

const cell = (page, id) => page.$eval(`#${id}`, (e) => ({ text: e.textContent, cls: e.className }));

async function main() {
  const kids = configKids();
  const origin = await startOrigin();
  const tokens = {
    entitled: mint(['--sub', 'alice', '--groups', 'entitled', '--ttl', '1h']),
    nogroup: mint(['--sub', 'bob', '--groups', 'basic', '--ttl', '1h']),
  };
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--autoplay-policy=no-user-gesture-required'],
  });
  const results = [];
  const run = async (name, fn) => {
    let reason = null;
    try { reason = await fn(); } catch (e) { reason = `harness: ${e.stack || e}`; }
    results.push({ name, reason });
    console.log(`${reason ? 'not ok' : 'ok'} - ${name}${reason ? `\n  ${reason}` : ''}`);
  };
  const licensePosts = (wire) => wire.filter((w) => w.method === 'POST' && w.url.startsWith(`${origin.url}/.drm/clearkey`));
  const offOrigin = (wire) => wire.filter((w) => !w.url.startsWith(origin.url + '/') && !w.url.startsWith('blob:') && !w.url.startsWith('data:'));
  const played = (check) => check.playback.time > TARGET_TIME && check.playback.frames > 0;

  await run('dash-entitled', async () => {
    const p = await openPage(browser, origin, `protocol=dash&token=${tokens.entitled}&autoplay=1`);
    const check = await settle(p.page, false);
    const table = { systems: await cell(p.page, 'c-systems'), kids: await cell(p.page, 'c-kids'),
      license: await cell(p.page, 'c-license'), cdm: await cell(p.page, 'c-cdm'), playback: await cell(p.page, 'c-playback') };
    const posts = licensePosts(p.wire);
    await p.context.close();
    if (check.errors.length) return `page errors: ${check.errors.join('; ')}`;
    if (!played(check)) return `did not play past ${TARGET_TIME} s: ${JSON.stringify(check.playback)}`;
    if (!posts.length || !posts.every((w) => w.status === 200)) return `license POSTs on the wire: ${JSON.stringify(posts)}`;
    for (const [role, kid] of Object.entries(kids)) {
      if (!check.kids.includes(kid)) return `self-check lists KIDs ${check.kids}, not the ${role} KID ${kid}`;
      if (!table.kids.text.includes(kid)) return `KID table cell "${table.kids.text}" lacks the ${role} KID`;
      if (!check.licenses.some((l) => l.status === 200 && l.kids.includes(kid))) {
        return `self-check shows no 200 license with the ${role} KID: ${JSON.stringify(check.licenses)}`;
      }
    }
    if (!check.systems.some((s) => /ClearKey/.test(s))) return `systems ${check.systems}: ClearKey not signalled`;
    if (check.keySystem !== 'org.w3.clearkey') return `key system ${check.keySystem}`;
    if (!/license 200/.test(table.license.text) || table.license.cls !== 'ok') return `license cell ${JSON.stringify(table.license)}`;
    if (!/playing/.test(table.playback.text) || table.playback.cls !== 'ok') return `playback cell ${JSON.stringify(table.playback)}`;
    if (offOrigin(p.wire).length) return `requests left the origin: ${JSON.stringify(offOrigin(p.wire).slice(0, 3))}`;
    return null;
  });

  await run('hls-cbcs-entitled', async () => {
    const p = await openPage(browser, origin, `protocol=hls&variant=cbcs&token=${tokens.entitled}&autoplay=1`);
    const check = await settle(p.page, false);
    await p.context.close();
    if (check.errors.length) return `page errors: ${check.errors.join('; ')}`;
    if (!played(check)) return `did not play past ${TARGET_TIME} s: ${JSON.stringify(check.playback)}`;
    for (const [role, kid] of Object.entries(kids)) {
      const fetched = p.wire.filter((w) => w.url.startsWith(`${origin.url}/.drm/key/${kid}?token=`));
      if (!fetched.some((w) => w.status === 200)) return `the ${role} key was not fetched with the token: ${JSON.stringify(fetched)}`;
      if (!check.kids.includes(kid)) return `self-check lists KIDs ${check.kids}, not the ${role} KID`;
    }
    if (check.scheme !== 'cbcs') return `scheme ${check.scheme}`;
    return null;
  });

  for (const [name, token, status, reason] of [
    ['dash-not-entitled', tokens.nogroup, 403, 'missing_required_claim'],
    ['dash-no-token', '', 401, 'missing_token'],
  ]) {
    await run(name, async () => {
      const p = await openPage(browser, origin, `protocol=dash${token ? `&token=${token}` : ''}&autoplay=1`);
      const check = await settle(p.page, true);
      const license = await cell(p.page, 'c-license');
      const playback = await cell(p.page, 'c-playback');
      const posts = licensePosts(p.wire);
      await p.context.close();
      if (!posts.length) return 'no license request reached the origin';
      if (!posts.every((w) => w.status === status)) return `license statuses ${posts.map((w) => w.status)}, expected ${status}`;
      if (check.playback.frames > 0) return `decoded ${check.playback.frames} frames without a license`;
      if (!check.licenses.some((l) => l.status === status && l.reason === reason)) {
        return `self-check does not show ${status} ${reason}: ${JSON.stringify(check.licenses)}`;
      }
      if (!license.text.includes(`${status} ${reason}`) || license.cls !== 'bad') return `license cell ${JSON.stringify(license)}`;
      if (!/failed/.test(playback.text) || playback.cls !== 'bad') return `playback cell ${JSON.stringify(playback)}`;
      return null;
    });
  }

  await run('http', async () => {
    const page = await fetch(`${origin.url}/player/multi`);
    const csp = page.headers.get('content-security-policy') || '';
    if (page.status !== 200 || !/text\/html/.test(page.headers.get('content-type'))) return `page ${page.status}`;
    if (!/script-src 'self'/.test(csp)) return `CSP ${JSON.stringify(csp)}`;
    const lib = await fetch(`${origin.url}/.player/shaka-player.js`);
    const body = await lib.text();
    if (lib.status !== 200 || !/javascript/.test(lib.headers.get('content-type')) || !body.includes('shaka')) return `library ${lib.status}`;
    const etag = lib.headers.get('etag');
    const again = await fetch(`${origin.url}/.player/shaka-player.js`, { headers: { 'If-None-Match': etag } });
    if (again.status !== 304) return `If-None-Match on the library answered ${again.status}`;
    const missing = await fetch(`${origin.url}/player/no-such-asset`);
    if (missing.status !== 404) return `page of an unknown asset: ${missing.status}`;
    return null;
  });

  await browser.close();
  origin.child.kill('SIGTERM');
  const failed = results.filter((r) => r.reason);
  console.log(`# player page: ${results.length - failed.length}/${results.length} passed`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
