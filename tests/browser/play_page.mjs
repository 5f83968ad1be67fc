#!/usr/bin/env node
// Plays one demo-page URL in headless Chromium and prints what happened as one JSON line:
//
//   node tests/browser/play_page.mjs 'http://127.0.0.1:PORT/player/multi?variant=cenc&autoplay=1'
//
// {"played": bool, "check": window.drmCheck, "wire": [{url, status, method}]}
// The caller (a pytest test) judges it: which URLs were fetched, through which server, with which
// statuses. Playback counts when the page's own clock passes TARGET seconds with frames decoded.
// Env: CHROMIUM (default /usr/bin/chromium), PLAY_SECONDS (default 4).

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TARGET = Number(process.env.PLAY_SECONDS || 4);
const TIMEOUT_MS = 40000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const url = process.argv[2];
  if (!url) throw new Error('usage: play_page.mjs URL');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic',
      '--autoplay-policy=no-user-gesture-required'],
  });
  const wire = [];
  let check = null;
  // Closing the page aborts the requests still in flight (the player fetches ahead): those are
  // the harness's doing, not failures of the server, and are left out of the wire.
  let closing = false;
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('response', (r) => wire.push({ url: r.url(), status: r.status(), method: r.request().method() }));
    page.on('requestfailed', (r) => {
      if (!closing) wire.push({ url: r.url(), status: 0, method: r.method(), failure: r.failure()?.errorText });
    });
    await page.goto(url, { waitUntil: 'load', timeout: 15000 });
    const started = Date.now();
    for (;;) {
      check = await page.evaluate(() => JSON.parse(JSON.stringify(window.drmCheck || null)));
      if (check && (check.errors.length || check.playback.time > TARGET)) break;
      if (Date.now() - started > TIMEOUT_MS) break;
      await sleep(250);
    }
    closing = true;
    await context.close();
  } finally {
    await browser.close();
  }
  const played = !!check && !check.errors.length && check.playback.time > TARGET && check.playback.frames > 0;
  console.log(JSON.stringify({ played, check, wire }));
}

main().catch((e) => {
  console.log(JSON.stringify({ played: false, check: null, wire: [], harness: String(e.stack || e) }));
  process.exit(0);
});
