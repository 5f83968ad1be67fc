// Browser device client of drm-origin (served at /.player/device.js; issue 11). The browser
// registers as a device with two non-extractable WebCrypto key pairs (ECDH P-256 to receive
// keys, ECDSA P-256 to sign requests) kept in IndexedDB, so they survive a reload and cannot be
// exported. For a chained policy it gets its root license from the origin (POST /.drm/root),
// unwraps the root key into a non-extractable AES-KW key (the root key never reaches JS), reads
// the leaf from the manifest's ContentProtection of our SystemID, unwraps the leaf's content
// keys with the root and hands them to the player (shaka-player drm.clearKeys, i.e. ClearKey
// EME). A factory reset tells the origin and deletes the keys. window.drmDevice is the API the
// page and the tests use; every refusal is an Error whose `reason` is a stable word.
'use strict';
(function () {
  const CHAIN_SCHEME = 'urn:uuid:b6e81ed0-de1c-4031-a1b6-cd77cd80fa2a';
  const CHAIN_ID = 'b6e81ed0de1c4031a1b6cd77cd80fa2a';
  const te = new TextEncoder();
  const td = new TextDecoder();
  const subtle = crypto.subtle;

  const refused = (reason, detail) => Object.assign(new Error(`${reason}: ${detail}`), { reason });
  const b64u = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const unb64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const u32 = (n) => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);

  // ---------------------------------------------------------------- IndexedDB: one record
  function db() {
    return new Promise((res, rej) => {
      const r = indexedDB.open('drm-origin-device', 1);
      r.onupgradeneeded = () => r.result.createObjectStore('device');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
  }
  async function idb(mode, f) {
    const d = await db();
    return new Promise((res, rej) => {
      const tx = d.transaction('device', mode);
      const req = f(tx.objectStore('device'));
      tx.oncomplete = () => res(req && req.result);
      tx.onerror = () => rej(tx.error);
    });
  }
  const load = () => idb('readonly', (s) => s.get('me'));
  const save = (rec) => idb('readwrite', (s) => s.put(rec, 'me'));
  const purge = () => idb('readwrite', (s) => s.delete('me'));

  // ---------------------------------------------------------------- signed device requests
  async function request(rec, act, aud, extra) {
    const jti = hex(crypto.getRandomValues(new Uint8Array(16)));
    const payload = { v: 1, act, dev: rec.id, iat: Math.floor(Date.now() / 1000), jti, aud, ...extra };
    const header = { alg: 'ES256', kid: rec.id, typ: 'drm-origin/device-request+jws' };
    const input = `${b64u(te.encode(JSON.stringify(header)))}.${b64u(te.encode(JSON.stringify(payload)))}`;
    const sig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, rec.sig.privateKey, te.encode(input));
    return `${input}.${b64u(sig)}`;
  }
  async function post(path, body, token) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const r = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
    let json = null;
    try { json = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw refused((json && json.reason) || `http_${r.status}`, `${path} answered ${r.status}`);
    return json;
  }
  const payloadOf = (jws) => JSON.parse(td.decode(unb64u(jws.split('.')[1])));

  // The origin's signature on `jws` with a key of /.drm/keys.json (pinned at registration).
  async function verifyOrigin(rec, jws, typ) {
    const [h, p, s] = jws.split('.');
    const header = JSON.parse(td.decode(unb64u(h)));
    if (header.typ !== typ) throw refused('wrong_type', `${header.typ} is not ${typ}`);
    const jwk = (rec.originKeys || []).find((k) => k.kid === header.kid);
    if (!jwk) throw refused('unknown_signing_key', `kid ${header.kid}`);
    const key = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const ok = await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, unb64u(s), te.encode(`${h}.${p}`));
    if (!ok) throw refused('bad_signature', typ);
    return JSON.parse(td.decode(unb64u(p)));
  }

  // ---------------------------------------------------------------- registration and reset
  async function register(token) {
    const enc = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const sig = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const pub = async (k) => { const j = await subtle.exportKey('jwk', k); return { kty: j.kty, crv: j.crv, x: j.x, y: j.y }; };
    const rec = { id: crypto.randomUUID(), enc, sig, gen: 0 };
    const req = await request(rec, 'register', '/.drm/device/register', { enc: await pub(enc.publicKey), sig: await pub(sig.publicKey), chain: true });
    const answer = await post('/.drm/device/register', { request: req }, token);
    rec.originKeys = (answer.origin_keys && answer.origin_keys.keys) || [];
    const cert = await verifyOrigin(rec, answer.certificate, 'drm-origin/device-certificate+jws');
    if (cert.dev !== rec.id) throw refused('wrong_device', 'certificate of another device');
    rec.gen = cert.gen;
    rec.certificate = answer.certificate;
    await save(rec);
    return { device_id: rec.id, gen: rec.gen };
  }

  async function reset(token) {
    const rec = await load();
    if (rec) {
      try {
        await post('/.drm/device/reset', { request: await request(rec, 'reset', '/.drm/device/reset', { gen: rec.gen }) }, token);
      } finally {
        await purge();
      }
    }
    return { reset: !!rec };
  }

  // ---------------------------------------------------------------- root and leaf
  // Opens a compact JWE (ECDH-ES+A256KW, A256GCM) to the device key by *unwrapping* its
  // payload as a JWK: the key it holds becomes a non-extractable CryptoKey.
  async function unwrapJwe(rec, compact, algorithm, usages) {
    const [h, ek, iv, ct, tag] = compact.split('.');
    const header = JSON.parse(td.decode(unb64u(h)));
    if (header.alg !== 'ECDH-ES+A256KW' || header.enc !== 'A256GCM') throw refused('malformed', 'JWE algorithms');
    const epk = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: header.epk.x, y: header.epk.y }, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    const z = new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: epk }, rec.enc.privateKey, 256));
    const alg = te.encode('ECDH-ES+A256KW');
    // Concat KDF (RFC 7518 §4.6.2), one SHA-256 round for a 256-bit key.
    const kekBytes = await subtle.digest('SHA-256', concat(u32(1), z, u32(alg.length), alg, u32(0), u32(0), u32(256)));
    const kek = await subtle.importKey('raw', kekBytes, 'AES-KW', false, ['unwrapKey']);
    const cek = await subtle.unwrapKey('raw', unb64u(ek), kek, 'AES-KW', { name: 'AES-GCM' }, false, ['unwrapKey']);
    return subtle.unwrapKey('jwk', concat(unb64u(ct), unb64u(tag)), cek,
      { name: 'AES-GCM', iv: unb64u(iv), additionalData: te.encode(h) }, algorithm, false, usages);
  }

  // The device's root licenses from the origin (acquire or renew), each checked.
  async function roots(token) {
    const rec = await load();
    if (!rec) throw refused('not_registered', 'register this browser first');
    const answer = await post('/.drm/root', { request: await request(rec, 'root', '/.drm/root', { gen: rec.gen }) }, token);
    const out = [];
    for (const jws of answer.roots || []) {
      const p = await verifyOrigin(rec, jws, 'drm-origin/root-license+jws');
      if (p.bind.kind !== 'device' || p.bind.id !== rec.id || p.bind.gen !== rec.gen) throw refused('wrong_device', p.rkid);
      out.push({ rkid: p.rkid, pol: p.pol, exp: p.exp, jws });
    }
    rec.roots = out;
    await save(rec);
    return out.map(({ rkid, pol, exp }) => ({ rkid, pol, exp }));
  }

  // The leaf of a DASH manifest: the Data of the pssh in a ContentProtection of our SystemID.
  async function leafOf(mpdUrl) {
    const text = await (await fetch(mpdUrl)).text();
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    for (const cp of Array.from(doc.getElementsByTagName('ContentProtection'))) {
      if ((cp.getAttribute('schemeIdUri') || '').toLowerCase() !== CHAIN_SCHEME) continue;
      const pssh = cp.getElementsByTagNameNS('urn:mpeg:cenc:2013', 'pssh')[0] || cp.getElementsByTagName('cenc:pssh')[0];
      const box = unb64(pssh.textContent.trim());
      const dv = new DataView(box.buffer);
      if (hex(box.subarray(12, 28)) !== CHAIN_ID) continue;
      let at = 28;
      if (box[8] === 1) at += 4 + 16 * dv.getUint32(28);
      const size = dv.getUint32(at);
      return JSON.parse(td.decode(box.subarray(at + 4, at + 4 + size)));
    }
    return null;
  }

  // The content keys of the leaf in `mpdUrl` ({kidHex: keyHex}), through a held root. Says which
  // path was used and why a license was refused (window.drmCheck.device).
  async function keysFor(mpdUrl) {
    const rec = await load();
    if (!rec) throw refused('not_registered', 'this browser is not a registered device (or was reset)');
    const leaf = await leafOf(mpdUrl);
    if (!leaf) throw refused('no_leaf', 'the manifest carries no leaf license');
    const header = JSON.parse(td.decode(unb64u(leaf.protected)));
    const now = Date.now() / 1000;
    let last = refused('no_root', `no root license for ${leaf.recipients.map((r) => r.header.kid).join(', ')}`);
    for (const r of leaf.recipients) {
      const root = (rec.roots || []).find((x) => x.rkid === r.header.kid);
      if (!root) continue;
      if (root.exp <= now) { last = refused('root_expired', `root ${root.rkid} expired at ${root.exp}`); continue; }
      if (root.pol !== header.pol) { last = refused('wrong_policy', `leaf of ${header.pol}`); continue; }
      const p = payloadOf(root.jws);
      const rootKey = await unwrapJwe(rec, p.key, 'AES-KW', ['unwrapKey']);
      let cek;
      try {
        cek = await subtle.unwrapKey('raw', unb64u(r.encrypted_key), rootKey, 'AES-KW', { name: 'AES-GCM' }, false, ['decrypt']);
      } catch (e) { last = refused('cannot_unwrap_leaf', e.name); continue; }
      let plain;
      try {
        plain = await subtle.decrypt({ name: 'AES-GCM', iv: unb64u(leaf.iv), additionalData: te.encode(leaf.protected) }, cek,
          concat(unb64u(leaf.ciphertext), unb64u(leaf.tag)));
      } catch (e) { last = refused('cannot_unwrap_leaf', e.name); continue; }
      const set = JSON.parse(td.decode(plain));
      if (set.asset !== header.asset) throw refused('malformed', 'leaf keys of another asset');
      const keys = {};
      for (const k of set.keys) keys[hex(unb64u(k.kid))] = hex(unb64u(k.k));
      return { keys, path: 'chained', rkid: root.rkid, root_exp: root.exp, asset: header.asset };
    }
    throw last;
  }

  // Whether the stored private keys are extractable (they must not be), for the self-check.
  async function status() {
    const rec = await load();
    if (!rec) return { registered: false };
    let exportRefused = false;
    try { await subtle.exportKey('jwk', rec.enc.privateKey); } catch (e) { exportRefused = true; }
    return {
      registered: true, device_id: rec.id, gen: rec.gen,
      extractable: rec.enc.privateKey.extractable || rec.sig.privateKey.extractable, exportRefused,
      roots: (rec.roots || []).map(({ rkid, exp }) => ({ rkid, exp })),
    };
  }

  window.drmDevice = { register, reset, roots, keysFor, status };
})();
