#!/usr/bin/env node
// Issue 14 in headless Chromium:
//   * demo: the README's first command (bash scripts/demo.sh) on a free port; every demo page
//     URL it prints for multi (DASH cenc, HLS cbcs, HLS AES-128), progressive (with a token from
//     the printed command) and fragmented (clear) plays past 4 s; progressive without a token
//     does not (401). A screenshot of the protected sample goes to $DEMO_SCREENSHOT if set.
//   * https: the origin with [server.tls] (a certificate from a CA made here, trusted through a
//     fresh NSS database in a temporary HOME), the demo page over https (HTTP/2) plays the
//     protected multi asset with its ClearKey license.
//   * export: `drm-origin package multi` served by plain nginx plays (shaka-player, DASH cenc)
//     with the licenses from the origin's endpoint (cross-origin, CORS).
// Env: DRM_ORIGIN_BIN, CHROMIUM (default /usr/bin/chromium), DEMO_SCREENSHOT.

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BIN = process.env.DRM_ORIGIN_BIN || join(ROOT, 'target', 'release', 'drm-origin');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TARGET_TIME = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
/** SIGTERM, then resolves once the child has exited (SIGKILL after 10 s). */
function stopped(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const force = setTimeout(() => child.kill('SIGKILL'), 10000);
    child.once('exit', () => { clearTimeout(force); resolve(); });
    child.kill('SIGTERM');
  });
}
process.on('exit', () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); });

function freePort() {
  return new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
}

// Starts `cmd args`, resolves with its stdout lines once `until(lines)` is true.
function start(cmd, args, until, env = {}) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const lines = []; const err = [];
    createInterface({ input: child.stderr }).on('line', (l) => err.push(l));
    createInterface({ input: child.stdout }).on('line', (l) => { lines.push(l); if (until(lines)) res({ child, lines, err }); });
    child.on('exit', (c) => rej(new Error(`${cmd} exited ${c}: ${err.slice(-10).join('\n')}`)));
    setTimeout(() => rej(new Error(`${cmd}: no start within 300 s`)), 300000);
  });
}

async function settle(page, expectFailure) {
  const started = Date.now();
  for (;;) {
    const c = await page.evaluate(() => JSON.parse(JSON.stringify(window.drmCheck)));
    if (c.errors.length || (!expectFailure && c.playback.time > TARGET_TIME) || Date.now() - started > 40000) return c;
    await sleep(250);
  }
}

const results = [];
async function run(name, fn) {
  let reason = null;
  try { reason = await fn(); } catch (e) { reason = `harness: ${e.stack || e}`; }
  results.push({ name, reason });
  console.log(`${reason ? 'not ok' : 'ok'} - ${name}${reason ? `\n  ${reason}` : ''}`);
}

async function demoPage(browser, url, { failure = false, shot = null } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: false });
  const page = await context.newPage();
  const wire = [];
  page.on('response', (r) => wire.push({ url: r.url(), status: r.status(), method: r.request().method(), proto: null }));
  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  const check = await settle(page, failure);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  await context.close();
  return { check, wire };
}

const played = (c) => c.playback.time > TARGET_TIME && c.playback.frames > 0 && !c.errors.length;

async function main() {
  const { chromium } = await import('playwright-core');
  const args = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-quic', '--autoplay-policy=no-user-gesture-required'];

  // ------------------------------------------------------------ demo (first README command)
  const demo = await start('bash', ['scripts/demo.sh', '--listen', '127.0.0.1:0'],
    (l) => l.some((x) => x.startsWith('  ./') && x.includes(' token ')));
  const cmd = demo.lines.find((x) => x.startsWith('  ./') && x.includes(' token ')).trim();
  const token = execFileSync('bash', ['-c', cmd], { cwd: ROOT, encoding: 'utf8' }).trim();
  const pages = demo.lines.filter((l) => l.trim().startsWith('demo page')).map((l) => l.trim().split(/\s+/)[2]);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  const want = [
    ['demo-multi-dash-cenc', '/player/multi?protocol=dash&variant=cenc', 'license'],
    ['demo-multi-hls-cbcs', '/player/multi?protocol=hls&variant=cbcs', 'key'],
    ['demo-multi-hls-aes128', '/player/multi?protocol=hls&variant=aes128', 'key'],
    ['demo-progressive-dash-token', '/player/progressive?protocol=dash&variant=cenc', 'license'],
    ['demo-fragmented-clear', '/player/fragmented?protocol=dash', null],
  ];
  for (const [name, prefix, licenseKind] of want) {
    await run(name, async () => {
      const url = pages.find((u) => new URL(u).pathname + new URL(u).search.replace(/&autoplay=1.*$/, '') === prefix);
      if (!url) return `no printed demo page URL ${prefix} in:\n${pages.join('\n')}`;
      const shot = name === 'demo-multi-dash-cenc' ? process.env.DEMO_SCREENSHOT : null;
      const { check } = await demoPage(browser, url.replace('TOKEN', token), { shot });
      if (!played(check)) return `did not play: ${JSON.stringify({ p: check.playback, e: check.errors })}`;
      if (licenseKind) {
        if (!check.licenses.length || !check.licenses.every((l) => l.status === 200)) return `licenses ${JSON.stringify(check.licenses)}`;
        if (licenseKind === 'license' && check.keySystem !== 'org.w3.clearkey') return `key system ${check.keySystem}`;
        if (check.scheme === 'clear') return 'played clear';
      } else if (check.licenses.length || check.scheme !== 'clear') {
        return `clear asset asked for keys: ${JSON.stringify(check.licenses)} scheme ${check.scheme}`;
      }
      return null;
    });
  }
  await run('demo-progressive-without-token-refused', async () => {
    const url = pages.find((u) => u.includes('/player/progressive?protocol=dash')).replace('&token=TOKEN', '');
    const { check } = await demoPage(browser, url, { failure: true });
    if (check.playback.frames > 0) return 'decoded frames without a token';
    if (!check.licenses.some((l) => l.status === 401 && l.reason === 'missing_token')) return JSON.stringify(check.licenses);
    return null;
  });
  demo.child.kill('SIGTERM');
  await browser.close();

  // ------------------------------------------------------------ https with a trusted test CA
  const tmp = mkdtempSync(join(tmpdir(), 'drm-ops-'));
  const ossl = (a) => execFileSync('openssl', a, { cwd: tmp, stdio: 'pipe' });
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=drm-origin browser test CA', '-days', '2']);
  ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(tmp, 'ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  ossl(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem', '-days', '2', '-extfile', 'ext']);
  const home = join(tmp, 'home');
  mkdirSync(join(home, '.pki', 'nssdb'), { recursive: true });
  execFileSync('certutil', ['-d', `sql:${home}/.pki/nssdb`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${home}/.pki/nssdb`, '-A', '-n', 'drm-origin-test-ca', '-t', 'C,,', '-i', join(tmp, 'ca.pem')]);
  const tlsPort = await freePort();
  const drm = readFileSync(join(HERE, 'drm.toml'), 'utf8');
  writeFileSync(join(tmp, 'tls.toml'), `[server.tls]\ncert = "${tmp}/srv.pem"\nkey = "${tmp}/srv.key"\nlisten = "127.0.0.1:${tlsPort}"\n\n${drm}`);
  const tls = await start(BIN, ['serve', '--assets', join(ROOT, 'assets'), '--listen', '127.0.0.1:0', '--config', join(tmp, 'tls.toml')],
    (l) => l.some((x) => x.startsWith('drm-origin listening on https://')));
  const httpsBase = tls.lines.find((x) => x.startsWith('drm-origin listening on https://')).split(' on ')[1];
  const trusted = await chromium.launch({ executablePath: CHROMIUM, headless: true, args, env: { ...process.env, HOME: home } });
  await run('https-h2-protected-playback', async () => {
    const { check, wire } = await demoPage(trusted, `${httpsBase}/player/multi?protocol=dash&variant=cenc&autoplay=1`);
    if (!played(check)) return `did not play over https: ${JSON.stringify({ p: check.playback, e: check.errors })}`;
    if (!check.licenses.length || !check.licenses.every((l) => l.status === 200)) return `licenses ${JSON.stringify(check.licenses)}`;
    if (!wire.every((w) => w.url.startsWith('https://') || w.url.startsWith('blob:') || w.url.startsWith('data:'))) return 'a request left https';
    return null;
  });
  await trusted.close();
  // Without the CA the browser refuses the origin: the trust above is what made it work.
  const untrusted = await chromium.launch({ executablePath: CHROMIUM, headless: true, args, env: { ...process.env, HOME: join(tmp, 'empty-home') } });
  await run('https-untrusted-ca-refused', async () => {
    const page = await (await untrusted.newContext()).newPage();
    try { await page.goto(`${httpsBase}/player/multi`, { timeout: 10000 }); return 'loaded without the CA'; } catch (e) {
      return /CERT|certificate/i.test(String(e)) ? null : `unexpected: ${e}`;
    }
  });
  await untrusted.close();
  tls.child.kill('SIGTERM');

  // ------------------------------------------------------------ export served by nginx
  const originPort = await freePort();
  writeFileSync(join(tmp, 'export.toml'), drm.replace('license_urls = {', `license_urls = { clearkey = "http://127.0.0.1:${originPort}/.drm/clearkey",`));
  const origin = await start(BIN, ['serve', '--assets', join(ROOT, 'assets'), '--listen', `127.0.0.1:${originPort}`, '--config', join(tmp, 'export.toml')],
    (l) => l.some((x) => x.startsWith('drm-origin listening on http://')));
  const out = join(tmp, 'export');
  const pack = spawnSync(BIN, ['package', 'multi', '--out', out, '--variant', 'cenc', '--config', join(tmp, 'export.toml')], { cwd: ROOT, encoding: 'utf8' });
  const ngxPort = await freePort();
  mkdirSync(join(out, 'lib'), { recursive: true });
  copyFileSync(join(HERE, 'page', 'player.html'), join(out, 'player.html'));
  copyFileSync(join(HERE, 'node_modules', 'shaka-player', 'dist', 'shaka-player.compiled.js'), join(out, 'lib', 'shaka-player.js'));
  writeFileSync(join(tmp, 'nginx.conf'), `daemon off; pid ${tmp}/nginx.pid; error_log ${tmp}/nginx.err; ${process.getuid() === 0 ? 'user root root;' : ''}
events {} http { include /etc/nginx/mime.types; types { application/dash+xml mpd; } access_log ${tmp}/access.log;
  client_body_temp_path ${tmp}; proxy_temp_path ${tmp}; fastcgi_temp_path ${tmp}; uwsgi_temp_path ${tmp}; scgi_temp_path ${tmp};
  server { listen 127.0.0.1:${ngxPort}; root ${out}; } }`);
  const nginx = spawn('nginx', ['-p', tmp, '-c', join(tmp, 'nginx.conf')], { stdio: 'ignore' });
  children.push(nginx);
  await sleep(700);
  const nbrowser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  await run('export-on-nginx-plays-with-origin-license', async () => {
    if (pack.status !== 0) return `package failed: ${pack.stderr}`;
    const page = await (await nbrowser.newContext()).newPage();
    const wire = [];
    page.on('response', (r) => wire.push({ url: r.url(), status: r.status(), method: r.request().method() }));
    await page.goto(`http://127.0.0.1:${ngxPort}/player.html?player=shaka&src=${encodeURIComponent('/multi/manifest.cenc.mpd')}`, { timeout: 15000 });
    const started = Date.now();
    let snap;
    for (;;) {
      snap = await page.evaluate(() => window.T.snapshot());
      if (snap.currentTime > TARGET_TIME || snap.errors?.length || Date.now() - started > 40000) break;
      await sleep(250);
    }
    const errs = await page.evaluate(() => window.T.errors);
    if (!(snap.currentTime > TARGET_TIME) || errs.length) return `did not play: t=${snap.currentTime} ${errs.join('; ')}`;
    const lic = wire.filter((w) => w.method === 'POST' && w.url === `http://127.0.0.1:${originPort}/.drm/clearkey`);
    if (!lic.length || !lic.every((w) => w.status === 200)) return `license from the origin: ${JSON.stringify(lic)}`;
    const media = wire.filter((w) => /\.m4s$/.test(w.url));
    if (!media.length || !media.every((w) => w.url.startsWith(`http://127.0.0.1:${ngxPort}/`))) return 'segments not from nginx';
    return null;
  });
  await nbrowser.close();
  // Wait for both to exit: the exit hook's SIGKILL of an nginx master still shutting down
  // would leave its worker running, orphaned, after the test.
  await Promise.all([stopped(nginx), stopped(origin.child)]);
  const failed = results.filter((r) => r.reason).length;
  console.log(`\nops.mjs: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
