// The citizen's keys, made in this browser: P-256 pairs by WebCrypto, PKCS#10 requests signed
// with them, and the private keys kept in IndexedDB encrypted under the citizen's password
// (PBKDF2-SHA-256 → AES-256-GCM) until the certificates are issued. Private keys never leave
// the browser.

import { seq, set, oid, utf8, int, bits, tlv, pem } from './der.js';

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256' };
const PBKDF2_ITERATIONS = 210000;

/** A P-256 key pair whose private key can be exported (into the PKCS#12 file later). */
export function newKeyPair() {
  return crypto.subtle.generateKey(ECDSA, true, ['sign', 'verify']);
}

/** ECDSA's r||s as the DER SEQUENCE { r INTEGER, s INTEGER } that X.509 carries. */
function ecdsaDer(raw) {
  const half = raw.length / 2;
  return seq(int(raw.slice(0, half)), int(raw.slice(half)));
}

/** A PKCS#10 request for the pair: subject CN (the CA writes its own subject), no attributes. */
export async function certificationRequest(pair, commonName) {
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
  const subject = seq(set(seq(oid('2.5.4.3'), utf8(commonName))));
  const info = seq(int(0), subject, spki, tlv(0xa0));
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, info));
  const der = seq(info, seq(oid('1.2.840.10045.4.3.2')), bits(ecdsaDer(sig)));
  return { pem: pem('CERTIFICATE REQUEST', der), spki };
}

async function passwordKey(password, salt) {
  const base = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt, iterations: PBKDF2_ITERATIONS, hash: 'SHA-256' },
    base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

function db() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open('nca-portal', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('keys', { keyPath: 'number' });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function tx(mode, f) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const t = d.transaction('keys', mode);
    const req = f(t.objectStore('keys'));
    t.oncomplete = () => { d.close(); resolve(req?.result); };
    t.onerror = () => { d.close(); reject(t.error); };
  });
}

/**
 * Keeps both private keys (PKCS#8) for application `number`, encrypted under `password`.
 * `pairs` is {auth, sign} of {pair, spki}.
 */
export async function keep(number, iin, password, pairs) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const key = await passwordKey(password, salt);
  const record = { number, iin, salt, created: Date.now() };
  for (const which of ['auth', 'sign']) {
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pairs[which].pair.privateKey));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, pkcs8));
    record[which] = { iv, ct, spki: pairs[which].spki };
  }
  await tx('readwrite', (s) => s.put(record));
}

/** Whether this browser holds keys for application `number`. */
export async function has(number) {
  try {
    return Boolean(await tx('readonly', (s) => s.get(number)));
  } catch {
    return false;
  }
}

/** The applications whose keys this browser keeps: [{number, iin, created}], newest first. */
export async function list() {
  try {
    const all = (await tx('readonly', (s) => s.getAll())) || [];
    return all.map((r) => ({ number: r.number, iin: r.iin, created: r.created })).sort((a, b) => b.created - a.created);
  } catch {
    return [];
  }
}

/** The kept keys of `number`, decrypted: {auth: {pkcs8, spki}, sign: …}; throws on a wrong password. */
export async function open(number, password) {
  const record = await tx('readonly', (s) => s.get(number));
  if (!record) throw new Error('no keys');
  const key = await passwordKey(password, record.salt);
  const out = {};
  for (const which of ['auth', 'sign']) {
    const r = record[which];
    const pkcs8 = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: r.iv }, key, r.ct));
    out[which] = { pkcs8, spki: new Uint8Array(r.spki) };
  }
  return out;
}
