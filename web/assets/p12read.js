// Reading a PKCS#12 file (RFC 7292) the citizen chose, in the browser: the one this portal made
// (PBES2/AES keys, HMAC-SHA-256 MAC), what `openssl pkcs12 -export` 3.x writes (PBES2/AES for keys
// and certificates), and the legacy files (`-legacy`, older tools: pbeWithSHA1And3-KeyTripleDES-
// CBC keys, pbeWithSHA1And40BitRC2-CBC certificates, SHA-1 MAC). The file is untrusted input:
// every structure is read with der.js's checks, sizes and iteration counts are bounded, and any
// fault is a Pkcs12Error with a code the page turns into a sentence:
//   format       not a PKCS#12 file, or a damaged one
//   password     the MAC or the decryption fails: the wrong password
//   unsupported  an algorithm this reader does not know
// Nothing leaves the browser: the password and the keys stay in this page's memory.

import { readWhole, expect, fields, children, readOid, readSmallInt, DerError, concat } from './der.js';
import { tripleDesCbcDecrypt, rc2CbcDecrypt } from './legacy-ciphers.js';

export class Pkcs12Error extends Error {
  constructor(code, message) { super(message); this.name = 'Pkcs12Error'; this.code = code; }
}

const MAX_FILE = 1 << 20;
const MAX_ITERATIONS = 1000000;
const MAX_BAGS = 64;

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbeSha1Rc2_128: '1.2.840.113549.1.12.1.5',
  pbeSha1Rc2_40: '1.2.840.113549.1.12.1.6',
  pbeSha1TripleDes: '1.2.840.113549.1.12.1.3',
  pbeSha1TwoKeyTripleDes: '1.2.840.113549.1.12.1.4',
  desEde3Cbc: '1.2.840.113549.3.7',
};
const HASHES = {
  '1.3.14.3.2.26': { name: 'SHA-1', u: 20, v: 64 },
  '2.16.840.1.101.3.4.2.1': { name: 'SHA-256', u: 32, v: 64 },
  '2.16.840.1.101.3.4.2.2': { name: 'SHA-384', u: 48, v: 128 },
  '2.16.840.1.101.3.4.2.3': { name: 'SHA-512', u: 64, v: 128 },
};
const PRFS = {
  '1.2.840.113549.2.7': 'SHA-1',
  '1.2.840.113549.2.9': 'SHA-256',
  '1.2.840.113549.2.10': 'SHA-384',
  '1.2.840.113549.2.11': 'SHA-512',
};
const AES = { '2.16.840.1.101.3.4.1.2': 16, '2.16.840.1.101.3.4.1.42': 32 };

const format = (m) => new Pkcs12Error('format', m);

/** The password as the PKCS#12 KDF takes it: BMPString, big-endian, with a closing NUL. */
export function bmpPassword(password) {
  const b = new Uint8Array(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) {
    b[2 * i] = password.charCodeAt(i) >> 8;
    b[2 * i + 1] = password.charCodeAt(i) & 0xff;
  }
  return b;
}

/** RFC 7292 appendix B.2: `n` bytes for purpose `id` (1 key, 2 IV, 3 MAC). */
export async function pkcs12Kdf(hash, password, salt, iterations, id, n) {
  const { name, u, v } = hash;
  const fill = (b) => {
    const out = new Uint8Array(b.length ? v * Math.ceil(b.length / v) : 0);
    for (let i = 0; i < out.length; i++) out[i] = b[i % b.length];
    return out;
  };
  const d = new Uint8Array(v).fill(id);
  const i = concat(fill(salt), fill(bmpPassword(password)));
  const out = [];
  for (let got = 0; got < n; got += u) {
    let a = concat(d, i);
    for (let r = 0; r < iterations; r++) a = new Uint8Array(await crypto.subtle.digest(name, a));
    out.push(a);
    // I_j = (I_j + B + 1) mod 2^(8v), B being A repeated to v bytes.
    const b = new Uint8Array(v);
    for (let k = 0; k < v; k++) b[k] = a[k % u];
    for (let j = 0; j < i.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const x = i[j + k] + b[k] + carry;
        i[j + k] = x & 0xff;
        carry = x >> 8;
      }
    }
  }
  return concat(...out).slice(0, n);
}

function iterationsOf(node) {
  try {
    return readSmallInt(node, MAX_ITERATIONS);
  } catch {
    throw new Pkcs12Error('unsupported', `an iteration count over ${MAX_ITERATIONS}`);
  }
}

/** Decrypts `data` under the AlgorithmIdentifier `alg` (a PBES2 or a PKCS#12 PBE scheme). */
async function decrypt(alg, data, password) {
  const [oidNode, params] = fields(alg, 0x30, 1, 'encryption algorithm');
  const oid = readOid(oidNode);
  if (oid === OID.pbes2) {
    const [kdf, enc] = fields(params, 0x30, 2, 'PBES2 parameters');
    const [kdfOid, kdfParams] = fields(kdf, 0x30, 2, 'key derivation');
    if (readOid(kdfOid) !== OID.pbkdf2) throw new Pkcs12Error('unsupported', 'a PBES2 key derivation other than PBKDF2');
    const p = fields(kdfParams, 0x30, 2, 'PBKDF2 parameters');
    const salt = expect(p[0], 0x04, 'PBKDF2 salt').value;
    const iterations = iterationsOf(p[1]);
    let prf = 'SHA-1';
    for (const extra of p.slice(2)) {
      if (extra.tag === 0x30) {
        prf = PRFS[readOid(fields(extra, 0x30, 1, 'PRF')[0])];
        if (!prf) throw new Pkcs12Error('unsupported', 'a PBKDF2 PRF other than HMAC-SHA-1/256/384/512');
      }
    }
    const [encOid, ivNode] = fields(enc, 0x30, 2, 'encryption scheme');
    const encName = readOid(encOid);
    const iv = expect(ivNode, 0x04, 'IV').value;
    const keyLength = AES[encName] ?? (encName === OID.desEde3Cbc ? 24 : 0);
    if (!keyLength) throw new Pkcs12Error('unsupported', `cipher ${encName}`);
    if (iv.length !== (keyLength === 24 ? 8 : 16)) throw format('IV length');
    const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveBits']);
    const key = new Uint8Array(await crypto.subtle.deriveBits(
      { name: 'PBKDF2', salt, iterations, hash: prf }, base, keyLength * 8));
    if (keyLength === 24) return legacy(() => tripleDesCbcDecrypt(data, key, iv));
    const aes = await crypto.subtle.importKey('raw', key, 'AES-CBC', false, ['decrypt']);
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CBC', iv }, aes, data));
    } catch {
      throw new Pkcs12Error('password', 'decryption failed');
    }
  }
  const legacyScheme = {
    [OID.pbeSha1TripleDes]: { keyLength: 24 },
    [OID.pbeSha1TwoKeyTripleDes]: { keyLength: 16 },
    [OID.pbeSha1Rc2_40]: { keyLength: 5, rc2: 40 },
    [OID.pbeSha1Rc2_128]: { keyLength: 16, rc2: 128 },
  }[oid];
  if (!legacyScheme) throw new Pkcs12Error('unsupported', `encryption ${oid}`);
  const p = fields(params, 0x30, 2, 'PBE parameters');
  const salt = expect(p[0], 0x04, 'PBE salt').value;
  const iterations = iterationsOf(p[1]);
  const sha1 = HASHES['1.3.14.3.2.26'];
  const key = await pkcs12Kdf(sha1, password, salt, iterations, 1, legacyScheme.keyLength);
  const iv = await pkcs12Kdf(sha1, password, salt, iterations, 2, 8);
  if (legacyScheme.rc2) return legacy(() => rc2CbcDecrypt(data, key, legacyScheme.rc2, iv));
  const key24 = key.length === 24 ? key : concat(key, key.subarray(0, 8));
  return legacy(() => tripleDesCbcDecrypt(data, key24, iv));
}

function legacy(f) {
  try {
    return f();
  } catch (e) {
    if (/padding/.test(e.message)) throw new Pkcs12Error('password', 'decryption failed');
    throw format(e.message);
  }
}

function attributes(set) {
  const out = {};
  if (!set) return out;
  for (const a of fields(set, 0x31, 0, 'attributes')) {
    const [oidNode, values] = fields(a, 0x30, 2, 'attribute');
    const first = fields(values, 0x31, 1, 'attribute values')[0];
    const oid = readOid(oidNode);
    if (oid === OID.localKeyId) out.localKeyId = expect(first, 0x04, 'localKeyId').value.slice();
    if (oid === OID.friendlyName && first.tag === 0x1e && first.value.length % 2 === 0) {
      let s = '';
      for (let i = 0; i < first.value.length; i += 2) s += String.fromCharCode((first.value[i] << 8) | first.value[i + 1]);
      out.name = s;
    }
  }
  return out;
}

/** A PrivateKeyInfo's DER, checked to be one (a wrong key can leave well-padded garbage). */
function privateKeyInfo(der) {
  try {
    const f = fields(readWhole(der), 0x30, 3, 'PrivateKeyInfo');
    readSmallInt(f[0], 1);
    fields(f[1], 0x30, 1, 'privateKeyAlgorithm');
    expect(f[2], 0x04, 'privateKey');
    return der;
  } catch (e) {
    if (e instanceof DerError) throw new Pkcs12Error('password', 'decryption gave no private key');
    throw e;
  }
}

async function safeContents(der, password, out) {
  for (const bag of fields(readWhole(der), 0x30, 0, 'SafeContents')) {
    if (out.keys.length + out.certificates.length >= MAX_BAGS) throw format('too many bags');
    const f = fields(bag, 0x30, 2, 'SafeBag');
    const kind = readOid(f[0]);
    const value = fields(expect(f[1], 0xa0, 'bagValue'), 0xa0, 1, 'bagValue')[0];
    const attrs = attributes(f[2]);
    if (kind === OID.shroudedKeyBag) {
      const [alg, enc] = fields(value, 0x30, 2, 'EncryptedPrivateKeyInfo');
      const pkcs8 = await decrypt(alg, expect(enc, 0x04, 'encryptedData').value, password);
      out.keys.push({ pkcs8: privateKeyInfo(pkcs8), ...attrs });
    } else if (kind === OID.keyBag) {
      out.keys.push({ pkcs8: privateKeyInfo(value.der.slice()), ...attrs });
    } else if (kind === OID.certBag) {
      const [type, certValue] = fields(value, 0x30, 2, 'CertBag');
      if (readOid(type) !== OID.x509Certificate) continue;
      const cert = expect(fields(expect(certValue, 0xa0, 'certValue'), 0xa0, 1, 'certValue')[0], 0x04, 'certificate');
      readWhole(cert.value, 0x30);
      out.certificates.push({ der: cert.value.slice(), ...attrs });
    }
    // Other bags (CRLs, secrets, nested SafeContents) are not needed to sign in: passed over.
  }
}

async function verifyMac(macData, authSafe, password) {
  const [digestInfo, saltNode, iterNode] = fields(macData, 0x30, 2, 'MacData');
  const [alg, digest] = fields(digestInfo, 0x30, 2, 'DigestInfo');
  const hash = HASHES[readOid(fields(alg, 0x30, 1, 'MAC algorithm')[0])];
  if (!hash) throw new Pkcs12Error('unsupported', 'a MAC hash other than SHA-1/256/384/512');
  const salt = expect(saltNode, 0x04, 'MAC salt').value;
  const iterations = iterNode ? iterationsOf(iterNode) : 1;
  const expected = expect(digest, 0x04, 'MAC').value;
  const key = await pkcs12Kdf(hash, password, salt, iterations, 3, hash.u);
  const hmac = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: hash.name }, false, ['verify']);
  if (!(await crypto.subtle.verify('HMAC', hmac, expected, authSafe))) {
    throw new Pkcs12Error('password', 'the integrity check (MAC) fails');
  }
}

/**
 * Opens a PKCS#12 file: {keys: [{pkcs8, localKeyId?, name?}], certificates: [{der, localKeyId?,
 * name?}]}. Throws Pkcs12Error.
 */
export async function readPkcs12(bytes, password) {
  if (!(bytes instanceof Uint8Array)) throw format('not bytes');
  if (bytes.length > MAX_FILE) throw format('file too large');
  try {
    const pfx = fields(readWhole(bytes), 0x30, 2, 'PFX');
    if (readSmallInt(pfx[0], 255) !== 3) throw format('PFX version is not 3');
    const [ctype, content] = fields(pfx[1], 0x30, 2, 'authSafe');
    if (readOid(ctype) !== OID.data) throw new Pkcs12Error('unsupported', 'a public-key integrity mode');
    const authSafe = expect(fields(expect(content, 0xa0, 'authSafe'), 0xa0, 1, 'authSafe')[0], 0x04, 'authSafe').value;
    if (pfx[2]) await verifyMac(pfx[2], authSafe, password);
    const out = { keys: [], certificates: [] };
    for (const ci of fields(readWhole(authSafe), 0x30, 0, 'AuthenticatedSafe')) {
      const [typeNode, explicit] = fields(ci, 0x30, 2, 'ContentInfo');
      const type = readOid(typeNode);
      const inner = fields(expect(explicit, 0xa0, 'content'), 0xa0, 1, 'content')[0];
      if (type === OID.data) {
        await safeContents(expect(inner, 0x04, 'data').value, password, out);
      } else if (type === OID.encryptedData) {
        const ed = fields(inner, 0x30, 2, 'EncryptedData');
        const eci = fields(ed[1], 0x30, 3, 'EncryptedContentInfo');
        let encrypted;
        if (eci[2].tag === 0x80) encrypted = eci[2].value;
        else if (eci[2].tag === 0xa0) encrypted = concat(...children(eci[2].value).map((c) => expect(c, 0x04, 'chunk').value));
        else throw format('encryptedContent');
        await safeContents(await decrypt(eci[1], encrypted, password), password, out);
      } else {
        throw new Pkcs12Error('unsupported', `content type ${type}`);
      }
    }
    return out;
  } catch (e) {
    if (e instanceof Pkcs12Error) throw e;
    if (e instanceof DerError) throw format(e.message);
    throw format(String(e?.message || e));
  }
}

