// Demo player of drm-origin (served at /.player/app.js; the page is /player/{asset}).
// Plays the asset with shaka-player and keeps a DRM self-check in window.drmCheck, shown in the
// table next to the video: what the manifest signals (systems, KIDs), every license / key request
// and its answer (status, KIDs granted, the origin's machine-readable reason when refused), the
// key system the browser used, and whether frames are decoded. Tests read window.drmCheck.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const q = new URLSearchParams(location.search);
  const asset = decodeURIComponent(location.pathname.replace(/^\/player\//, ''));
  const protocol = q.get('protocol') === 'hls' ? 'hls' : 'dash';
  const variant = /^(cenc|cbcs|aes128)$/.test(q.get('variant') || '') ? q.get('variant') : '';
  const token = (q.get('token') || '').trim();
  // device=1: keys through this browser's device licenses (chained policies: root + leaf).
  const useDevice = q.get('device') === '1';
  const video = $('video');

  // Registered DRM system ids (DASH-IF registry) and HLS KEYFORMATs, by name.
  const SYSTEMS = {
    'edef8ba9-79d6-4ace-a3c8-27dcd51d21ed': 'Widevine',
    '9a04f079-9840-4286-ab92-e65be0885f95': 'PlayReady',
    'e2719d58-a985-b3c9-781a-b030af78d30e': 'ClearKey',
    '1077efec-c0b2-4d02-ace3-3c1e52e2fb4b': 'W3C Common (ClearKey)',
    '94ce86fb-07ff-4f43-adb8-93d2fa968ca2': 'FairPlay',
    'b6e81ed0-de1c-4031-a1b6-cd77cd80fa2a': 'drm-origin chain (leaf license)',
  };
  const KEYFORMATS = {
    'com.widevine': 'Widevine',
    'urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed': 'Widevine',
    'com.microsoft.playready': 'PlayReady',
    'com.apple.streamingkeydelivery': 'FairPlay',
    'org.w3.clearkey': 'ClearKey',
    'identity': 'identity (key URI)',
  };

  const check = window.drmCheck = {
    asset, protocol, variant, tokenGiven: !!token,
    manifest: null,          // {url, status}
    scheme: null,            // cenc | cbcs | AES-128 | clear
    systems: [],             // names
    kids: [],                // hex, lower case, no dashes
    licenses: [],            // {kind: 'license'|'key', url, status, kids, reason}
    keySystem: null,         // what the browser's EME used
    device: null,            // device=1: {path: chained|refused, rkid, root_exp, reason}
    playback: { time: 0, frames: 0, playing: false },
    errors: [],
  };

  // ------------------------------------------------------------------ display
  function set(id, text, cls) {
    const el = $(id);
    el.textContent = text;
    el.className = cls;
  }
  function log(text) {
    const line = `${new Date().toISOString().slice(11, 23)} ${text}\n`;
    $('log').textContent += line;
  }
  function fail(text) {
    check.errors.push(text);
    log(`ERROR ${text}`);
  }
  const uniq = (a) => Array.from(new Set(a));
  const hexKid = (s) => s.replace(/-/g, '').toLowerCase();
  const b64urlToHex = (s) => Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')),
    (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');

  function showLicenses() {
    if (!check.licenses.length) return;
    const parts = check.licenses.map((l) => l.status === 200
      ? `${l.kind} 200 (${l.kids.length ? l.kids.join(', ') : 'raw key'})`
      : `${l.kind} ${l.status}${l.reason ? ' ' + l.reason : ''}`);
    const bad = check.licenses.some((l) => l.status !== 200);
    set('c-license', parts.join('; '), bad ? 'bad' : 'ok');
  }

  // ------------------------------------------------------------------ manifest self-check
  async function inspectDash(url) {
    const r = await fetch(url);
    check.manifest = { url, status: r.status };
    if (!r.ok) throw new Error(`manifest answered ${r.status}`);
    const doc = new DOMParser().parseFromString(await r.text(), 'application/xml');
    const cps = Array.from(doc.getElementsByTagName('ContentProtection'));
    for (const cp of cps) {
      const scheme = (cp.getAttribute('schemeIdUri') || '').toLowerCase();
      if (scheme === 'urn:mpeg:dash:mp4protection:2011') {
        check.scheme = cp.getAttribute('value');
        const kid = cp.getAttributeNS('urn:mpeg:cenc:2013', 'default_KID') || cp.getAttribute('cenc:default_KID');
        if (kid) check.kids.push(hexKid(kid));
      } else if (scheme.startsWith('urn:uuid:')) {
        check.systems.push(SYSTEMS[scheme.slice(9)] || scheme);
      }
    }
    if (!check.scheme) check.scheme = 'clear';
  }

  async function inspectHls(url) {
    const r = await fetch(url);
    check.manifest = { url, status: r.status };
    if (!r.ok) throw new Error(`playlist answered ${r.status}`);
    const master = await r.text();
    const lines = master.split('\n').map((l) => l.trim());
    const keyLines = lines.filter((l) => l.startsWith('#EXT-X-SESSION-KEY:'));
    const i = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF'));
    const media = i >= 0 ? lines.slice(i + 1).find((l) => l && !l.startsWith('#')) : null;
    if (media) {
      const m = await fetch(new URL(media, url));
      if (m.ok) keyLines.push(...(await m.text()).split('\n').filter((l) => l.startsWith('#EXT-X-KEY:')));
    }
    const attr = (t, k) => { const x = new RegExp(`[:,]${k}=("([^"]*)"|[^,]*)`).exec(t); return x ? (x[2] !== undefined ? x[2] : x[1]) : null; };
    check.scheme = 'clear';
    for (const t of keyLines) {
      const method = attr(t, 'METHOD');
      if (!method || method === 'NONE') continue;
      check.scheme = method === 'AES-128' ? 'AES-128' : method === 'SAMPLE-AES-CTR' ? 'cenc' : 'cbcs';
      const fmt = attr(t, 'KEYFORMAT') || 'identity';
      check.systems.push(method === 'AES-128' ? 'HLS AES-128 (key URI)' : KEYFORMATS[fmt] || fmt);
      const kid = attr(t, 'KEYID');
      const uri = attr(t, 'URI') || '';
      const fromUri = /\/\.drm\/key\/([0-9a-f]{32})/.exec(uri);
      if (kid) check.kids.push(kid.replace(/^0x/i, '').toLowerCase());
      else if (fromUri) check.kids.push(fromUri[1]);
    }
  }

  // ------------------------------------------------------------------ playback
  async function play() {
    set('c-playback', 'loading', 'wait');
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) throw new Error('this browser cannot play with shaka-player (no MSE/EME)');
    const base = `${location.origin}/${asset.split('/').map(encodeURIComponent).join('/')}`;
    const suffix = variant ? `.${variant}` : '';
    let url = protocol === 'dash' ? `${base}/manifest${suffix}.mpd` : `${base}/master${suffix}.m3u8`;
    // HLS key URIs cannot carry headers: the origin writes the playlist's token into them.
    if (protocol === 'hls' && token) url += `?token=${encodeURIComponent(token)}`;
    try {
      await (protocol === 'dash' ? inspectDash(url) : inspectHls(url));
    } catch (e) {
      fail(`manifest: ${e.message}`);
    }
    check.systems = uniq(check.systems);
    check.kids = uniq(check.kids);
    const m = check.manifest;
    set('c-manifest', m ? `${m.status} ${m.url.replace(/token=[^&]*/, 'token=…')} (${check.scheme || '?'})` : 'not loaded',
      m && m.status === 200 ? 'ok' : 'bad');
    set('c-systems', check.systems.length ? check.systems.join(', ') : 'none (clear)', check.systems.length ? 'ok' : 'wait');
    set('c-kids', check.kids.length ? check.kids.join(', ') : '–', check.kids.length ? 'ok mono' : 'wait');

    const player = new shaka.Player();
    window.player = player;
    const T = shaka.net.NetworkingEngine.RequestType;
    player.configure({
      drm: {
        servers: { 'org.w3.clearkey': `${location.origin}/.drm/clearkey` },
        // Browsers with Widevine or PlayReady would try those first, against license URLs this
        // page knows nothing about: the origin's own service speaks ClearKey.
        preferredKeySystems: ['org.w3.clearkey'],
      },
    });
    const net = player.getNetworkingEngine();
    net.registerRequestFilter((type, request) => {
      if (type === T.LICENSE && token) request.headers['Authorization'] = `Bearer ${token}`;
    });
    net.registerResponseFilter((type, response) => {
      if (type === T.LICENSE) {
        let kids = [];
        try {
          const body = JSON.parse(new TextDecoder().decode(response.data));
          kids = (body.keys || []).map((k) => b64urlToHex(k.kid));
        } catch (e) { /* a non-JSON license is shown without KIDs */ }
        check.licenses.push({ kind: 'license', url: response.uri, status: response.status || 200, kids, reason: null });
        log(`license ${response.status || 200}: ${kids.join(', ')}`);
        showLicenses();
      } else if (type === T.KEY) {
        check.licenses.push({ kind: 'key', url: response.uri.replace(/token=[^&]*/, 'token=…'), status: response.status || 200, kids: [], reason: null });
        log(`key ${response.status || 200}: ${response.uri.replace(/\?.*$/, '')}`);
        showLicenses();
      }
    });
    if (useDevice) {
      // The device client unwraps the leaf with its root; the keys go to ClearKey EME directly,
      // so no license request leaves the page.
      try {
        if (protocol !== 'dash') throw Object.assign(new Error('the device client reads the leaf from DASH manifests'), { reason: 'dash_only' });
        const got = await window.drmDevice.keysFor(url);
        check.device = { path: got.path, rkid: got.rkid, root_exp: got.root_exp, reason: null };
        player.configure('drm.clearKeys', got.keys);
        set('c-device', `${got.path} via root ${got.rkid} (expires ${new Date(got.root_exp * 1000).toISOString()})`, 'ok');
      } catch (e) {
        check.device = { path: 'refused', reason: e.reason || e.message };
        set('c-device', `refused: ${e.reason || e.message}`, 'bad');
        fail(`device license: ${e.message}`);
        set('c-playback', `failed: ${e.message}`, 'bad');
        return;
      }
    }
    player.addEventListener('error', (ev) => onError(ev.detail));
    await player.attach(video);
    try {
      await player.load(url);
    } catch (e) {
      onError(e);
      return;
    }
    const drm = player.drmInfo && player.drmInfo();
    check.keySystem = player.keySystem() || null;
    set('c-cdm', check.keySystem ? `${check.keySystem}${drm && drm.licenseServerUri ? ' via ' + drm.licenseServerUri : ''}` : 'none (clear or key URI)',
      check.keySystem ? 'ok' : 'wait');
    log(`loaded ${url.replace(/token=[^&]*/, 'token=…')}`);
    video.play().catch((e) => log(`play(): ${e.name}`));
  }

  // A shaka error; for refused licenses and keys, the origin's status and reason.
  function onError(e) {
    const code = e && e.code;
    let detail = `shaka error ${code}`;
    // 6007 LICENSE_REQUEST_FAILED wraps the network error; 1001 BAD_HTTP_STATUS carries
    // [uri, status, responseText, headers, requestType].
    const net = code === 6007 && e.data && e.data[0] ? e.data[0] : e;
    if (net && net.code === 1001 && net.data) {
      const [uri, status, text, , type] = net.data;
      let reason = null;
      try { reason = JSON.parse(text).reason || null; } catch (x) { /* not the origin's JSON */ }
      const kind = type === shaka.net.NetworkingEngine.RequestType.KEY ? 'key' : 'license';
      if (kind === 'license' || code === 6007 || /\/\.drm\//.test(uri)) {
        check.licenses.push({ kind, url: String(uri).replace(/token=[^&]*/, 'token=…'), status, kids: [], reason });
        showLicenses();
      }
      detail += `: HTTP ${status}${reason ? ' ' + reason : ''} from ${String(uri).replace(/\?.*$/, '')}`;
    } else if (e && e.message) {
      detail += `: ${e.message}`;
    }
    fail(detail);
    set('c-playback', `failed: ${detail}`, 'bad');
  }

  setInterval(() => {
    let frames = 0;
    try { frames = video.getVideoPlaybackQuality().totalVideoFrames; } catch (e) { /* ignore */ }
    check.playback = { time: video.currentTime, frames, playing: !video.paused && video.currentTime > 0 };
    if (check.errors.length) return;
    if (video.currentTime > 0) {
      set('c-playback', `playing t=${video.currentTime.toFixed(1)} s, ${frames} frames decoded`, frames > 0 ? 'ok' : 'wait');
    }
  }, 250);

  // ------------------------------------------------------------------ form
  $('asset').textContent = asset;
  $('protocol').value = protocol;
  $('variant').value = variant;
  $('token').value = token;
  $('form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ protocol: $('protocol').value, autoplay: '1' });
    if ($('variant').value) p.set('variant', $('variant').value);
    if ($('token').value.trim()) p.set('token', $('token').value.trim());
    location.search = p.toString();
  });
  const deviceAction = (f, what) => async () => {
    try {
      const r = await f();
      log(`${what}: ${JSON.stringify(r)}`);
      set('c-device', `${what}: ok`, 'ok');
    } catch (e) {
      fail(`${what}: ${e.message}`);
      set('c-device', `${what} refused: ${e.reason || e.message}`, 'bad');
    }
  };
  const tok = () => $('token').value.trim();
  $('dev-register').addEventListener('click', deviceAction(async () => { const r = await window.drmDevice.register(tok()); await window.drmDevice.roots(tok()); return r; }, 'register'));
  $('dev-renew').addEventListener('click', deviceAction(() => window.drmDevice.roots(tok()), 'renew root'));
  $('dev-reset').addEventListener('click', deviceAction(() => window.drmDevice.reset(tok()), 'factory reset'));
  if (typeof shaka === 'undefined') {
    fail('shaka-player did not load from /.player/shaka-player.js (see the origin log: player.script)');
    set('c-playback', 'shaka-player library missing on the origin', 'bad');
    return;
  }
  if (q.get('autoplay') === '1') play().catch((e) => { fail(e.message); set('c-playback', `failed: ${e.message}`, 'bad'); });
})();
