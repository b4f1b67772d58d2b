// A minimal DER encoder and reader: just what PKCS#10 requests, PKCS#8 keys, PKCS#12 files and
// CMS SignedData need. Values are Uint8Arrays throughout. The reader takes untrusted files (a
// citizen's PKCS#12): every tag and length is checked, and a bad one throws a DerError.

export function concat(...parts) {
  const arrays = parts.flat().map((p) => (p instanceof Uint8Array ? p : new Uint8Array(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) { out.set(a, o); o += a.length; }
  return out;
}

function length(n) {
  if (n < 0x80) return [n];
  const b = [];
  while (n > 0) { b.unshift(n & 0xff); n = Math.floor(n / 256); }
  return [0x80 | b.length, ...b];
}

/** A TLV of `tag` around the parts. */
export function tlv(tag, ...parts) {
  const body = concat(...parts);
  return concat(new Uint8Array([tag, ...length(body.length)]), body);
}

export const seq = (...p) => tlv(0x30, ...p);
export const octets = (b) => tlv(0x04, b);
export const nul = () => new Uint8Array([0x05, 0x00]);
export const bits = (b) => tlv(0x03, new Uint8Array([0]), b);
export const utf8 = (s) => tlv(0x0c, new TextEncoder().encode(s));
/** [n] EXPLICIT (constructed, context-specific). */
export const explicit = (n, ...p) => tlv(0xa0 + n, ...p);

/** SET OF, its elements in DER order (sorted by their encodings). */
export function set(...elements) {
  const sorted = elements.flat().slice().sort((a, b) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  });
  return tlv(0x31, ...sorted);
}

/** BMPString: UTF-16 big-endian. */
export function bmp(s) {
  const b = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) { b[2 * i] = s.charCodeAt(i) >> 8; b[2 * i + 1] = s.charCodeAt(i) & 0xff; }
  return tlv(0x1e, b);
}

/** INTEGER from a non-negative number or from unsigned big-endian bytes. */
export function int(v) {
  let b;
  if (typeof v === 'number') {
    const a = [];
    do { a.unshift(v & 0xff); v = Math.floor(v / 256); } while (v > 0);
    b = new Uint8Array(a);
  } else {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    b = v.slice(i);
  }
  if (b[0] & 0x80) b = concat(new Uint8Array([0]), b);
  return tlv(0x02, b);
}

export function oid(dotted) {
  const p = dotted.split('.').map(Number);
  const out = [];
  // The first two arcs share the first subidentifier, base-128 like the others (2.999 is 1079).
  for (const n of [40 * p[0] + p[1], ...p.slice(2)]) {
    const chunk = [n & 0x7f];
    let v = Math.floor(n / 128);
    while (v > 0) { chunk.unshift((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

/** A DER reading error: the input is not what it claims (truncated, wrong tag, bad length). */
export class DerError extends Error {
  constructor(message) { super(`DER: ${message}`); this.name = 'DerError'; }
}

/**
 * Reads the TLV at `offset` of untrusted bytes: {tag, value, start, end, der} (end is past its
 * last byte). Refuses what DER forbids or this code does not need: a missing or multi-byte tag,
 * an indefinite or non-minimal length, a length over 2^31 or past the end of the input.
 */
export function read(bytes, offset = 0) {
  if (!(bytes instanceof Uint8Array)) throw new DerError('not bytes');
  if (!Number.isInteger(offset) || offset < 0 || offset + 2 > bytes.length) throw new DerError('truncated');
  const tag = bytes[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not used here');
  let len = bytes[offset + 1];
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length');
    if (n > 4) throw new DerError('length too long');
    if (offset + 2 + n > bytes.length) throw new DerError('truncated');
    if (bytes[offset + 2] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[offset + 2 + i];
    if (len < 0x80) throw new DerError('non-minimal length');
    if (len > 0x7fffffff) throw new DerError('length too long');
    hdr += n;
  }
  const end = offset + hdr + len;
  if (end > bytes.length) throw new DerError('truncated');
  return { tag, value: bytes.subarray(offset + hdr, end), start: offset, end, der: bytes.subarray(offset, end) };
}

/** The one TLV that is the whole of `bytes` (no trailing data), of tag `tag` when given. */
export function readWhole(bytes, tag) {
  const node = read(bytes, 0);
  if (node.end !== bytes.length) throw new DerError('trailing data');
  if (tag !== undefined) expect(node, tag);
  return node;
}

/** Throws unless `node` has tag `tag`; returns it. */
export function expect(node, tag, what = 'value') {
  if (!node || node.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found ${node ? `0x${node.tag.toString(16)}` : 'nothing'}`);
  }
  return node;
}

/** The TLVs inside a constructed value (each read with every check above). */
export function children(value) {
  const out = [];
  for (let o = 0; o < value.length;) { const c = read(value, o); out.push(c); o = c.end; }
  return out;
}

/** The children of `node`, which must have tag `tag` and at least `min` children. */
export function fields(node, tag, min = 0, what = 'value') {
  expect(node, tag, what);
  const c = children(node.value);
  if (c.length < min) throw new DerError(`${what}: ${c.length} fields, at least ${min} expected`);
  return c;
}

/** An OBJECT IDENTIFIER's dotted form. */
export function readOid(node) {
  expect(node, 0x06, 'OID');
  const b = node.value;
  if (b.length === 0 || b.length > 64) throw new DerError('OID length');
  const parts = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    if (v === 0 && b[i] === 0x80) throw new DerError('OID: non-minimal');
    v = v * 128 + (b[i] & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID: arc too large');
    if (!(b[i] & 0x80)) { parts.push(v); v = 0; } else if (i === b.length - 1) throw new DerError('OID: truncated');
  }
  const first = parts.shift();
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

/** A non-negative INTEGER that fits a JavaScript number (iteration counts, versions). */
export function readSmallInt(node, max = 0x7fffffff) {
  expect(node, 0x02, 'INTEGER');
  const b = node.value;
  if (b.length === 0 || b.length > 6 || (b[0] & 0x80)) throw new DerError('INTEGER: not a small non-negative number');
  let v = 0;
  for (const x of b) v = v * 256 + x;
  if (v > max) throw new DerError(`INTEGER: ${v} over ${max}`);
  return v;
}

/** The parts of a certificate the pages use: the TBS's fields, raw. */
export function certificateParts(certDer) {
  const cert = fields(readWhole(certDer), 0x30, 3, 'Certificate');
  const tbs = fields(cert[0], 0x30, 6, 'TBSCertificate');
  const i = tbs[0].tag === 0xa0 ? 1 : 0;
  if (tbs.length < i + 6) throw new DerError('TBSCertificate: too few fields');
  const serial = expect(tbs[i], 0x02, 'serialNumber');
  const issuer = expect(tbs[i + 2], 0x30, 'issuer');
  const spki = expect(tbs[i + 5], 0x30, 'subjectPublicKeyInfo');
  const ext = tbs.slice(i + 6).find((n) => n.tag === 0xa3);
  let keyUsage = null;
  if (ext) {
    for (const e of fields(children(ext.value)[0], 0x30, 0, 'extensions')) {
      const f = fields(e, 0x30, 2, 'extension');
      if (readOid(f[0]) !== '2.5.29.15') continue;
      const bits = expect(read(expect(f[f.length - 1], 0x04, 'extnValue').value), 0x03, 'keyUsage').value;
      keyUsage = bits.length > 1 ? bits[1] : 0;
    }
  }
  const alg = readOid(fields(fields(spki, 0x30, 2, 'subjectPublicKeyInfo')[0], 0x30, 1, 'algorithm')[0]);
  return { serial, issuer, spki: spki.der, keyAlgorithm: alg, keyUsage };
}

/** A certificate's SubjectPublicKeyInfo, DER. */
export function certificateSpki(certDer) {
  return certificateParts(certDer).spki;
}

export function pem(label, der) {
  let b = '';
  for (const x of der) b += String.fromCharCode(x);
  const lines = btoa(b).match(/.{1,64}/g).join('\n');
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

/** Every block of a PEM text with this label, as DER. */
export function unpem(text, label) {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => Uint8Array.from(atob(m[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0)));
}

export function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
