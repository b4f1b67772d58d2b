// The two ciphers of legacy PKCS#12 files (`openssl pkcs12 -export -legacy`, and most files older
// tools wrote) that WebCrypto does not have: triple DES (EDE, three keys) and RC2 (RFC 2268),
// both in CBC mode, decryption with the PKCS#7 padding checked. Written out here instead of
// bundling a library: they are small, they only ever decrypt a file the citizen chose, and the
// node:test suite (tests/web/) checks them against vectors OpenSSL made and those of RFC 2268.
// Neither is fast or constant-time; neither needs to be for opening one's own key file.

// ---- DES (FIPS 46-3): bit tables, 1-based bit positions as the standard prints them.
const IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
  64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
  61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7];
const FP = [40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31, 38, 6, 46, 14, 54, 22, 62, 30,
  37, 5, 45, 13, 53, 21, 61, 29, 36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
  34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25];
const E = [32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
  16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1];
const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9,
  19, 13, 30, 6, 22, 11, 4, 25];
const PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
  60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37,
  29, 21, 13, 5, 28, 20, 12, 4];
const PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
  41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32];
const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
const S = [
  [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
    4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
  [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
    0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
  [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
    13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
  [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
    10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
  [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
    4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
  [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
    9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
  [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
    1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
  [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
    7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
];

const toBits = (bytes) => {
  const b = new Array(bytes.length * 8);
  for (let i = 0; i < b.length; i++) b[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
  return b;
};
const fromBits = (bits) => {
  const out = new Uint8Array(bits.length / 8);
  for (let i = 0; i < bits.length; i++) out[i >> 3] |= bits[i] << (7 - (i & 7));
  return out;
};
const permute = (bits, table) => table.map((p) => bits[p - 1]);
const rotl = (half, n) => half.slice(n).concat(half.slice(0, n));

/** The 16 round keys of one 8-byte DES key (parity bits ignored), as bit arrays. */
function desSubkeys(key8) {
  const k = permute(toBits(key8), PC1);
  let c = k.slice(0, 28);
  let d = k.slice(28);
  const out = [];
  for (const s of SHIFTS) {
    c = rotl(c, s);
    d = rotl(d, s);
    out.push(permute(c.concat(d), PC2));
  }
  return out;
}

function feistel(r, subkey) {
  const x = permute(r, E).map((b, i) => b ^ subkey[i]);
  const out = [];
  for (let s = 0; s < 8; s++) {
    const b = x.slice(6 * s, 6 * s + 6);
    const v = S[s][(b[0] * 2 + b[5]) * 16 + (b[1] * 8 + b[2] * 4 + b[3] * 2 + b[4])];
    out.push((v >> 3) & 1, (v >> 2) & 1, (v >> 1) & 1, v & 1);
  }
  return permute(out, P);
}

/** One DES block (8 bytes) with the round keys in the order given (reversed: decryption). */
function desBlock(block, subkeys) {
  const bits = permute(toBits(block), IP);
  let l = bits.slice(0, 32);
  let r = bits.slice(32);
  for (const k of subkeys) {
    const f = feistel(r, k);
    [l, r] = [r, l.map((b, i) => b ^ f[i])];
  }
  return fromBits(permute(r.concat(l), FP));
}

function checkCbc(data, key, keyLength, iv) {
  if (!(data instanceof Uint8Array) || !(key instanceof Uint8Array) || !(iv instanceof Uint8Array)) {
    throw new Error('cipher: bytes expected');
  }
  if (key.length !== keyLength) throw new Error(`cipher: key of ${key.length} bytes, ${keyLength} expected`);
  if (iv.length !== 8) throw new Error('cipher: IV must be 8 bytes');
  if (data.length === 0 || data.length % 8 !== 0) throw new Error('cipher: ciphertext is not whole blocks');
}

/** PKCS#7 padding, checked in full: a wrong key almost always fails here. */
export function unpad(plain) {
  const n = plain[plain.length - 1];
  if (n < 1 || n > 8 || n > plain.length) throw new Error('cipher: bad padding (wrong password?)');
  for (let i = plain.length - n; i < plain.length; i++) {
    if (plain[i] !== n) throw new Error('cipher: bad padding (wrong password?)');
  }
  return plain.slice(0, plain.length - n);
}

function cbcDecrypt(data, iv, decryptBlock) {
  const out = new Uint8Array(data.length);
  let prev = iv;
  for (let o = 0; o < data.length; o += 8) {
    const c = data.subarray(o, o + 8);
    const p = decryptBlock(c);
    for (let i = 0; i < 8; i++) out[o + i] = p[i] ^ prev[i];
    prev = c;
  }
  return unpad(out);
}

function cbcEncrypt(data, iv, encryptBlock) {
  const n = 8 - (data.length % 8);
  const padded = new Uint8Array(data.length + n).fill(n);
  padded.set(data);
  const out = new Uint8Array(padded.length);
  let prev = iv;
  for (let o = 0; o < padded.length; o += 8) {
    const x = new Uint8Array(8);
    for (let i = 0; i < 8; i++) x[i] = padded[o + i] ^ prev[i];
    prev = encryptBlock(x);
    out.set(prev, o);
  }
  return out;
}

function tripleDes(key24) {
  const [k1, k2, k3] = [0, 8, 16].map((o) => desSubkeys(key24.subarray(o, o + 8)));
  const rev = (k) => k.slice().reverse();
  return {
    encrypt: (b) => desBlock(desBlock(desBlock(b, k1), rev(k2)), k3),
    decrypt: (b) => desBlock(desBlock(desBlock(b, rev(k3)), k2), rev(k1)),
  };
}

/** DES-EDE3-CBC decryption, PKCS#7 padding removed. */
export function tripleDesCbcDecrypt(data, key24, iv) {
  checkCbc(data, key24, 24, iv);
  return cbcDecrypt(data, iv, tripleDes(key24).decrypt);
}

/** DES-EDE3-CBC encryption with PKCS#7 padding (for the tests). */
export function tripleDesCbcEncrypt(data, key24, iv) {
  return cbcEncrypt(data, iv, tripleDes(key24).encrypt);
}

// ---- RC2 (RFC 2268).
const PITABLE = Uint8Array.from(
  ('d978f9c419ddb5ed28e9fd794aa0d89d' +
  'c67e37832b76538e624c6488448bfba2' +
  '179a59f587b34f1361456d8d09817d32' +
  'bd8f40eb86b77b0bf09521225c6b4e82' +
  '54d66593ce60b21c7356c014a78cf1dc' +
  '1275ca1f3bbee4d1423dd430a33cb626' +
  '6fbf0eda4669075727f21d9bbc944303' +
  'f811c7f690ef3ee706c3d52fc8661ed7' +
  '08e8eade8052eef784aa72ac354d6a2a' +
  '961ad2715a1549744b9fd05e0418a4ec' +
  'c2e0416e0f51cbcc2491af50a1f47039' +
  '997c3a8523b8b47afc02365b25559731' +
  '2d5dfa98e38a92ae05df2910676cbac9' +
  'd300e6cfe19ea82c6316013f58e289a9' +
  '0d38341bab33ffb0bb480c5fb9b1cd2e' +
  'c5f3db47e5a59c770aa62068fe7fc1ad').match(/../g).map((h) => parseInt(h, 16)));

/** The 64 16-bit round keys of `key` with `bits` effective key bits. */
function rc2Keys(key, bits) {
  const t = key.length;
  if (t < 1 || t > 128) throw new Error('cipher: RC2 key length');
  if (bits < 1 || bits > 1024) throw new Error('cipher: RC2 effective key bits');
  const l = new Uint8Array(128);
  l.set(key);
  for (let i = t; i < 128; i++) l[i] = PITABLE[(l[i - 1] + l[i - t]) & 0xff];
  const t8 = (bits + 7) >> 3;
  const tm = 0xff % (1 << (8 + bits - 8 * t8));
  l[128 - t8] = PITABLE[l[128 - t8] & tm];
  for (let i = 127 - t8; i >= 0; i--) l[i] = PITABLE[l[i + 1] ^ l[i + t8]];
  const k = new Uint16Array(64);
  for (let i = 0; i < 64; i++) k[i] = l[2 * i] | (l[2 * i + 1] << 8);
  return k;
}

const ROT = [1, 2, 3, 5];

function rc2(key, bits) {
  const k = rc2Keys(key, bits);
  const words = (b) => [0, 2, 4, 6].map((o) => b[o] | (b[o + 1] << 8));
  const bytes = (r) => Uint8Array.from(r.flatMap((w) => [w & 0xff, w >> 8]));
  return {
    encrypt(block) {
      const r = words(block);
      let j = 0;
      const mix = () => {
        for (let i = 0; i < 4; i++) {
          r[i] = (r[i] + k[j++] + (r[(i + 3) & 3] & r[(i + 2) & 3]) + (~r[(i + 3) & 3] & r[(i + 1) & 3])) & 0xffff;
          r[i] = ((r[i] << ROT[i]) | (r[i] >> (16 - ROT[i]))) & 0xffff;
        }
      };
      const mash = () => { for (let i = 0; i < 4; i++) r[i] = (r[i] + k[r[(i + 3) & 3] & 63]) & 0xffff; };
      for (let n = 0; n < 5; n++) mix();
      mash();
      for (let n = 0; n < 6; n++) mix();
      mash();
      for (let n = 0; n < 5; n++) mix();
      return bytes(r);
    },
    decrypt(block) {
      const r = words(block);
      let j = 63;
      const mix = () => {
        for (let i = 3; i >= 0; i--) {
          r[i] = ((r[i] >> ROT[i]) | (r[i] << (16 - ROT[i]))) & 0xffff;
          r[i] = (r[i] - k[j--] - (r[(i + 3) & 3] & r[(i + 2) & 3]) - (~r[(i + 3) & 3] & r[(i + 1) & 3])) & 0xffff;
        }
      };
      const mash = () => { for (let i = 3; i >= 0; i--) r[i] = (r[i] - k[r[(i + 3) & 3] & 63]) & 0xffff; };
      for (let n = 0; n < 5; n++) mix();
      mash();
      for (let n = 0; n < 6; n++) mix();
      mash();
      for (let n = 0; n < 5; n++) mix();
      return bytes(r);
    },
  };
}

/** One RC2 block, for the RFC 2268 vectors. */
export function rc2EncryptBlock(block, key, bits) {
  return rc2(key, bits).encrypt(block);
}

/** RC2-CBC decryption with `bits` effective key bits (40 for pbeWithSHAAnd40BitRC2-CBC). */
export function rc2CbcDecrypt(data, key, bits, iv) {
  checkCbc(data, key, key.length, iv);
  return cbcDecrypt(data, iv, rc2(key, bits).decrypt);
}
