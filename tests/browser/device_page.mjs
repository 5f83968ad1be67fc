#!/usr/bin/env node
// The demo page's browser device client (issue 11) in headless Chromium, against the real origin
// with a chained copy of tests/browser/license.toml (every asset chained; [devices] on).
//
//   node tests/browser/device_page.mjs
//
// One browser profile (a persistent context: IndexedDB survives reloads, as in a real browser):
//   * before registration the page refuses with `not_registered` and decodes nothing;
//   * the page registers the browser as a device (WebCrypto key pairs, non-extractable) and gets
//     its root from POST /.drm/root; after a reload the keys are still there, still not
//     extractable (exportKey is refused);
//   * /player/multi?device=1&autoplay=1 WITHOUT any token plays past 4 s: the keys come from the
//     leaf in the MPD, unwrapped with the root; no license or key request reaches the origin;
//   * after a factory reset (POST /.drm/device/reset, keys deleted) playback fails
//     (`not_registered`, no frame), and works again after re-registration.
// Env: DRM_ORIGIN_BIN (server binary), CHROMIUM (default /usr/bin/chromium).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = process.env.DRM_ORIGIN_BIN || join(ROOT, 'target', 'release', 'drm-origin');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TARGET_TIME = 4;
const CASE_TIMEOUT_MS = 40000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const TMP = mkdtempSync(join(tmpdir(), 'drm-device-page-'));
const CONFIG = join(TMP, 'origin.toml');
writeFileSync(CONFIG, readFileSync(join(HERE, 'license.toml'), 'utf8')
  .replace('[policies.lic]', '[policies.lic]\ndevice_licenses = "chained"') +
  `\n[devices]\nregistry = "sqlite:${TMP}/devices.sqlite3"\nsecret_file = "${TMP}/master.key"\n` +
  `signing_key = "${TMP}/signing.pem"\nregister_claims = { groups = "entitled" }\n[licenses]\ndir = "${TMP}/licenses"\n`);

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

async function settle(page, expectFailure) {
  const started = Date.now();
  for (;;) {
    const check = await page.evaluate(() => JSON.parse(JSON.stringify(window.drmCheck)));
    if (check.errors.length) { await sleep(expectFailure ? 3000 : 500); return page.evaluate(() => JSON.parse(JSON.stringify(window.drmCheck))); }
    if (!expectFailure && check.playback.time > TARGET_TIME) return check;
    if (Date.now() - started > (expectFailure ? 8000 : CASE_TIMEOUT_MS)) return check;
    await sleep(250);
  }
}

async function main() {
  const origin = await startOrigin();
  const token = mint(['--sub', 'dora', '--groups', 'entitled', '--ttl', '1h']);
  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(join(TMP, 'profile'), {
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--autoplay-policy=no-user-gesture-required'],
  });
  const page = await context.newPage();
  const wire = [];
  page.on('response', (r) => wire.push({ url: r.url(), status: r.status(), method: r.request().method() }));
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const playUrl = `${origin.url}/player/multi?protocol=dash&device=1&autoplay=1`;
  const results = [];
  const run = async (name, fn) => {
    let reason = null;
    try { reason = await fn(); } catch (e) { reason = `harness: ${e.stack || e}`; }
    results.push({ name, reason });
    console.log(`${reason ? 'not ok' : 'ok'} - ${name}${reason ? `\n  ${reason}` : ''}`);
    if (reason && origin.log.length) console.log(origin.log.slice(-8).map((l) => `  | ${l}`).join('\n'));
  };
  const keyRequests = (from) => wire.slice(from).filter((w) => /\/\.drm\/(clearkey|key\/|license)/.test(w.url));
  const played = (c) => c.playback.time > TARGET_TIME && c.playback.frames > 0;

  await run('refused-before-registration', async () => {
    await page.goto(playUrl, { waitUntil: 'load' });
    const c = await settle(page, true);
    if (!c.device || c.device.reason !== 'not_registered') return `device self-check ${JSON.stringify(c.device)}`;
    if (c.playback.frames > 0) return `decoded ${c.playback.frames} frames without a device`;
    return null;
  });

  let deviceId = null;
  await run('register-and-reload', async () => {
    const reg = await page.evaluate(async (t) => { const r = await window.drmDevice.register(t); await window.drmDevice.roots(t); return r; }, token);
    deviceId = reg.device_id;
    await page.reload({ waitUntil: 'load' });
    const st = await page.evaluate(() => window.drmDevice.status());
    if (!st.registered || st.device_id !== deviceId || st.gen !== 1) return `after reload: ${JSON.stringify(st)}`;
    if (st.extractable !== false || st.exportRefused !== true) return `private keys extractable: ${JSON.stringify(st)}`;
    if (!st.roots.some((r) => r.rkid === 'lic.1')) return `no root lic.1 held: ${JSON.stringify(st.roots)}`;
    return null;
  });

  await run('plays-chained-without-token', async () => {
    const from = wire.length;
    await page.goto(playUrl, { waitUntil: 'load' });
    const c = await settle(page, false);
    if (c.errors.length) return `page errors: ${c.errors.join('; ')}`;
    if (!played(c)) return `did not play past ${TARGET_TIME} s: ${JSON.stringify(c.playback)}`;
    if (!c.device || c.device.path !== 'chained' || c.device.rkid !== 'lic.1') return `device self-check ${JSON.stringify(c.device)}`;
    if (c.keySystem !== 'org.w3.clearkey') return `key system ${c.keySystem}`;
    if (keyRequests(from).length) return `license/key requests reached the origin: ${JSON.stringify(keyRequests(from))}`;
    const cell = await page.$eval('#c-device', (e) => ({ text: e.textContent, cls: e.className }));
    if (!/chained via root lic\.1/.test(cell.text) || cell.cls !== 'ok') return `device cell ${JSON.stringify(cell)}`;
    return null;
  });

  await run('factory-reset-then-refused', async () => {
    await page.evaluate((t) => window.drmDevice.reset(t), token);
    const st = await page.evaluate(() => window.drmDevice.status());
    if (st.registered) return `still registered after reset: ${JSON.stringify(st)}`;
    const r = await fetch(`${origin.url}/.drm/root`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    if (r.status < 400) return `POST /.drm/root without a request answered ${r.status}`;
    await page.goto(playUrl, { waitUntil: 'load' });
    const c = await settle(page, true);
    if (c.playback.frames > 0 || played(c)) return `played after a factory reset: ${JSON.stringify(c.playback)}`;
    if (!c.device || c.device.reason !== 'not_registered') return `device self-check ${JSON.stringify(c.device)}`;
    return null;
  });

  await run('re-registration-plays-again', async () => {
    const reg = await page.evaluate(async (t) => { const r = await window.drmDevice.register(t); await window.drmDevice.roots(t); return r; }, token);
    if (reg.device_id === deviceId) return 'a reset device must come back with new keys and a new id';
    await page.goto(playUrl, { waitUntil: 'load' });
    const c = await settle(page, false);
    if (!played(c)) return `did not play past ${TARGET_TIME} s after re-registration: ${JSON.stringify(c.playback)} ${c.errors}`;
    if (!c.device || c.device.path !== 'chained') return `device self-check ${JSON.stringify(c.device)}`;
    return null;
  });

  if (pageErrors.length) console.log(`# page errors: ${pageErrors.slice(0, 3).join(' | ')}`);
  await context.close();
  origin.child.kill('SIGTERM');
  const failed = results.filter((r) => r.reason);
  console.log(`# device page: ${results.length - failed.length}/${results.length} passed`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
