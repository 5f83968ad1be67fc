// Independent JOSE oracle for device licensing (npm `jose`, not our code): verifies origin
// objects against the published JWKS and opens a license's JWE with the device's key.
//   node jose_oracle.mjs JWKS_FILE ENC_PKCS8_PEM LICENSE_FILE [MORE_SIGNED_FILES...]
// Prints {"verified": n, "typ": [...], "asset": ..., "kids": [...], "keys": n}.
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const [jwksFile, pemFile, licenseFile, ...others] = process.argv.slice(2);
const jwks = jose.createLocalJWKSet(JSON.parse(readFileSync(jwksFile, 'utf8')));
const out = { verified: 0, typ: [] };
for (const f of [licenseFile, ...others]) {
  const { payload, protectedHeader } = await jose.compactVerify(readFileSync(f, 'utf8').trim(), jwks, { algorithms: ['ES256'] });
  out.verified += 1;
  out.typ.push(protectedHeader.typ);
  if (f === licenseFile) {
    const lic = JSON.parse(new TextDecoder().decode(payload));
    const key = await jose.importPKCS8(readFileSync(pemFile, 'utf8'), 'ECDH-ES+A256KW');
    const { plaintext, protectedHeader: h } = await jose.compactDecrypt(lic.key, key, {
      keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'],
    });
    const set = JSON.parse(new TextDecoder().decode(plaintext));
    out.asset = set.asset;
    out.enc = h.enc;
    out.keys = set.keys.length;
    out.kids = set.keys.map((k) => Buffer.from(k.kid, 'base64url').toString('hex'));
    out.license_kids = lic.kids;
  }
}
console.log(JSON.stringify(out));
