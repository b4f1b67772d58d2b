// PKCS#12 (RFC 7292) assembled in the browser: the private keys shrouded with PBES2
// (PBKDF2-HMAC-SHA-256, AES-256-CBC), the certificates beside them, each key paired with its
// certificate by localKeyId, and an HMAC-SHA-256 integrity MAC keyed by the PKCS#12 KDF. This is
// what `openssl pkcs12` 3.x writes by default, and opens.

import { seq, set, oid, int, nul, octets, explicit, bmp, concat } from './der.js';

const ITERATIONS = 100000;
const MAC_ITERATIONS = 2048;
const OID = {
  data: '1.2.840.113549.1.7.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacSha256: '1.2.840.113549.2.9',
  aes256cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
};

const random = (n) => crypto.getRandomValues(new Uint8Array(n));

/** EncryptedPrivateKeyInfo of a PKCS#8 key under `password` (PBES2; the password's UTF-8 bytes). */
async function shroud(pkcs8, password) {
  const salt = random(16);
  const iv = random(16);
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveKey']);
  const key = await crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt, iterations: ITERATIONS, hash: 'SHA-256' },
    base, { name: 'AES-CBC', length: 256 }, false, ['encrypt']);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, key, pkcs8));
  const alg = seq(oid(OID.pbes2), seq(
    seq(oid(OID.pbkdf2), seq(octets(salt), int(ITERATIONS), seq(oid(OID.hmacSha256), nul()))),
    seq(oid(OID.aes256cbc), octets(iv))));
  return seq(alg, octets(ct));
}

/** The password as PKCS#12 wants it for the MAC: BMPString bytes with a final NUL. */
function bmpPassword(password) {
  const b = new Uint8Array(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) {
    b[2 * i] = password.charCodeAt(i) >> 8;
    b[2 * i + 1] = password.charCodeAt(i) & 0xff;
  }
  return b;
}

/** RFC 7292 appendix B.2 with SHA-256, for one 32-byte key (ID 3: the MAC key). */
async function pkcs12Kdf(password, salt, iterations) {
  const v = 64;
  const fill = (b) => {
    if (b.length === 0) return new Uint8Array(0);
    const out = new Uint8Array(v * Math.ceil(b.length / v));
    for (let i = 0; i < out.length; i++) out[i] = b[i % b.length];
    return out;
  };
  const d = new Uint8Array(v).fill(3);
  let a = concat(d, fill(salt), fill(bmpPassword(password)));
  for (let i = 0; i < iterations; i++) a = new Uint8Array(await crypto.subtle.digest('SHA-256', a));
  return a;
}

function attributes(name, keyId) {
  const attrs = [];
  if (keyId) attrs.push(seq(oid(OID.localKeyId), set(octets(keyId))));
  if (name) attrs.push(seq(oid(OID.friendlyName), set(bmp(name))));
  return set(...attrs);
}

/**
 * A PKCS#12 file. `entries`: [{name, pkcs8, certificate}] (a key and its certificate, DER);
 * `chain`: CA certificates (DER). Returns the DER bytes.
 */
export async function pkcs12(entries, chain, password) {
  const bags = [];
  for (const e of entries) {
    const keyId = new Uint8Array(await crypto.subtle.digest('SHA-1', e.certificate));
    bags.push(seq(oid(OID.shroudedKeyBag), explicit(0, await shroud(e.pkcs8, password)), attributes(e.name, keyId)));
    bags.push(seq(oid(OID.certBag), explicit(0, seq(oid(OID.x509Certificate), explicit(0, octets(e.certificate)))),
      attributes(e.name, keyId)));
  }
  for (const c of chain) {
    bags.push(seq(oid(OID.certBag), explicit(0, seq(oid(OID.x509Certificate), explicit(0, octets(c))))));
  }
  const safeContents = seq(...bags);
  const authSafe = seq(seq(oid(OID.data), explicit(0, octets(safeContents))));
  const macSalt = random(16);
  const macKey = await crypto.subtle.importKey('raw', await pkcs12Kdf(password, macSalt, MAC_ITERATIONS),
    { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', macKey, authSafe));
  const macData = seq(seq(seq(oid(OID.sha256), nul()), octets(mac)), octets(macSalt), int(MAC_ITERATIONS));
  return seq(int(3), seq(oid(OID.data), explicit(0, octets(authSafe))), macData);
}
