// A minimal DER encoder and reader: just what PKCS#10 requests, PKCS#8 keys and PKCS#12 files
// need. Values are Uint8Arrays throughout.

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
  const out = [40 * p[0] + p[1]];
  for (const n of p.slice(2)) {
    const chunk = [n & 0x7f];
    let v = Math.floor(n / 128);
    while (v > 0) { chunk.unshift((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

/** Reads the TLV at `offset`: {tag, value, start, end} (end is past its last byte). */
export function read(bytes, offset = 0) {
  const tag = bytes[offset];
  let len = bytes[offset + 1];
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[offset + 2 + i];
    hdr += n;
  }
  const end = offset + hdr + len;
  if (end > bytes.length) throw new Error('DER: truncated');
  return { tag, value: bytes.subarray(offset + hdr, end), start: offset, end, der: bytes.subarray(offset, end) };
}

/** The TLVs inside a constructed value. */
export function children(value) {
  const out = [];
  for (let o = 0; o < value.length;) { const c = read(value, o); out.push(c); o = c.end; }
  return out;
}

/** A certificate's SubjectPublicKeyInfo, DER. */
export function certificateSpki(certDer) {
  const cert = read(certDer);
  const tbs = children(children(cert.value)[0].value);
  const i = tbs[0].tag === 0xa0 ? 1 : 0;
  return tbs[i + 5].der;
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
