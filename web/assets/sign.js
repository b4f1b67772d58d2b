// Signing in the browser with the citizen's own keys (WebCrypto): the cabinet's sign-in
// challenge with the AUTH key, and CMS SignedData (RFC 5652) with the SIGN key for reissue (P2)
// and revocation (P3) requests, as the service verifies them (`pki::cms`): attached content,
// signed attributes contentType, signingTime and messageDigest, SHA-256, IssuerAndSerialNumber,
// the signer's certificate included. P-256 (ECDSA) and RSA (PKCS#1 v1.5) keys.

import {
  seq, set, oid, int, nul, octets, tlv, explicit, concat,
  readWhole, fields, readOid, expect, certificateParts,
} from './der.js';

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256: '2.16.840.1.101.3.4.2.1',
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
};

/** The algorithm of a PKCS#8 key: 'ec' (P-256) or 'rsa'; throws for anything else. */
export function keyKind(pkcs8) {
  const f = fields(readWhole(pkcs8), 0x30, 3, 'PrivateKeyInfo');
  const alg = fields(f[1], 0x30, 1, 'algorithm');
  const name = readOid(alg[0]);
  if (name === OID.rsaEncryption) return 'rsa';
  if (name === OID.ecPublicKey && alg[1] && alg[1].tag === 0x06 && readOid(alg[1]) === OID.p256) return 'ec';
  throw new Error('key: only P-256 and RSA keys are supported');
}

const params = (kind) => (kind === 'ec'
  ? { name: 'ECDSA', namedCurve: 'P-256' }
  : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
const signParams = (kind) => (kind === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' });

/** A signer from a PKCS#8 key: {kind, key (not extractable), sign(bytes) → DER signature}. */
export async function signer(pkcs8) {
  const kind = keyKind(pkcs8);
  const key = await crypto.subtle.importKey('pkcs8', pkcs8, params(kind), false, ['sign']);
  return {
    kind,
    async sign(bytes) {
      const sig = new Uint8Array(await crypto.subtle.sign(signParams(kind), key, bytes));
      return kind === 'ec' ? ecdsaDer(sig) : sig;
    },
  };
}

/** Whether the certificate's public key is the signer's: a test signature verifies with it. */
export async function certifies(certDer, s) {
  const parts = certificateParts(certDer);
  const want = parts.keyAlgorithm === OID.rsaEncryption ? 'rsa' : 'ec';
  if (want !== s.kind) return false;
  try {
    const pub = await crypto.subtle.importKey('spki', parts.spki, params(want), false, ['verify']);
    const probe = new TextEncoder().encode('nca key check');
    const sig = await s.sign(probe);
    return await crypto.subtle.verify(signParams(want), pub, want === 'ec' ? ecdsaRaw(sig) : sig, probe);
  } catch {
    return false;
  }
}

/** ECDSA's r||s as the DER SEQUENCE { r INTEGER, s INTEGER } that X.509 and CMS carry. */
export function ecdsaDer(raw) {
  const half = raw.length / 2;
  return seq(int(raw.slice(0, half)), int(raw.slice(half)));
}

/** The DER ECDSA signature back to r||s (32 bytes each), for WebCrypto's verify. */
function ecdsaRaw(der) {
  const [r, s] = fields(readWhole(der), 0x30, 2, 'ECDSA signature').map((n) => expect(n, 0x02, 'ECDSA').value);
  const fix = (b) => { const x = b[0] === 0 ? b.slice(1) : b; const o = new Uint8Array(32); o.set(x, 32 - x.length); return o; };
  return concat(fix(r), fix(s));
}

/** UTCTime for a moment (seconds since the epoch), as CMS signingTime wants it before 2050. */
function utcTime(seconds) {
  const d = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, '0');
  const s = `${two(d.getUTCFullYear() % 100)}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}` +
    `${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  return tlv(0x17, new TextEncoder().encode(s));
}

/**
 * CMS SignedData over `content` (bytes) by `s` with its certificate `certDer`, signing time
 * `now` (seconds; the page passes the service's clock). Returns the ContentInfo, DER.
 */
export async function signedData(content, certDer, s, now) {
  const parts = certificateParts(certDer);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', content));
  const attrs = [
    seq(oid(OID.contentType), set(oid(OID.data))),
    seq(oid(OID.signingTime), set(utcTime(now))),
    seq(oid(OID.messageDigest), set(octets(digest))),
  ];
  // The signature covers the attributes as a SET OF (tag 0x31); they travel as [0] IMPLICIT.
  const signedAttrs = set(...attrs);
  const signature = await s.sign(signedAttrs);
  const implicitAttrs = concat(new Uint8Array([0xa0]), signedAttrs.subarray(1));
  const sha256 = seq(oid(OID.sha256), nul());
  const sigAlg = s.kind === 'ec' ? seq(oid(OID.ecdsaWithSha256)) : seq(oid(OID.sha256WithRsa), nul());
  const signerInfo = seq(
    int(1),
    seq(parts.issuer.der, parts.serial.der),
    sha256,
    implicitAttrs,
    sigAlg,
    octets(signature));
  const sd = seq(
    int(1),
    set(sha256),
    seq(oid(OID.data), explicit(0, octets(content))),
    tlv(0xa0, certDer),
    set(signerInfo));
  return seq(oid(OID.signedData), explicit(0, sd));
}
