// The legacy ciphers of PKCS#12 files (web/assets/legacy-ciphers.js) against RFC 2268's vectors,
// vectors `openssl enc` made, and Node's own 3DES.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import {
  rc2EncryptBlock, rc2CbcDecrypt, tripleDesCbcDecrypt, tripleDesCbcEncrypt,
} from '../../web/assets/legacy-ciphers.js';

const hex = (s) => Uint8Array.from(s.match(/../g).map((x) => parseInt(x, 16)));
const toHex = (b) => Buffer.from(b).toString('hex');
const plain = 'hello rc2 test vector 1234567890';
const decode = (b) => new TextDecoder().decode(b);

test('RC2 blocks match RFC 2268 section 5', () => {
  assert.equal(toHex(rc2EncryptBlock(hex('0000000000000000'), hex('0000000000000000'), 63)), 'ebb773f993278eff');
  assert.equal(toHex(rc2EncryptBlock(hex('ffffffffffffffff'), hex('ffffffffffffffff'), 64)), '278b27e42e2f0d49');
  assert.equal(toHex(rc2EncryptBlock(hex('1000000000000001'), hex('3000000000000000'), 64)), '30649edf9be7d2c2');
  assert.equal(toHex(rc2EncryptBlock(hex('0000000000000000'), hex('88'), 64)), '61a8a244adacccf0');
});

test('RC2-CBC decrypts what openssl enc -rc2-40-cbc and -rc2-cbc made', () => {
  // openssl enc -rc2-40-cbc -provider legacy -K 0102030405 -iv 0001020304050607
  const c40 = hex('976cb21ca1ce71fe3c49bb0092e1022139107cd695ff3047c0ada14fc7221f8e86ceed4c152a96d7');
  assert.equal(decode(rc2CbcDecrypt(c40, hex('0102030405'), 40, hex('0001020304050607'))), plain);
  // openssl enc -rc2-cbc -provider legacy -K 000102…0f -iv 0001020304050607
  const c128 = hex('7689fb006339dce286b62081902a2d6a71692143948fa5dd2efb8bf7b46d94726b68ed667e53061d');
  assert.equal(decode(rc2CbcDecrypt(c128, hex('000102030405060708090a0b0c0d0e0f'), 128, hex('0001020304050607'))), plain);
});

test('3DES-CBC decrypts what openssl enc -des-ede3-cbc made, and agrees with Node both ways', () => {
  const key = hex('0123456789abcdef23456789abcdef01456789abcdef0123');
  const iv = hex('1234567890abcdef');
  const c = hex('41a726ff4a5cd9eba9109baf71fe4653c26dbaccc0e70f00dfb050a8a93e72a489303f19316cad2d');
  assert.equal(decode(tripleDesCbcDecrypt(c, key, iv)), plain);
  for (const n of [0, 1, 7, 8, 9, 100]) {
    const k = new Uint8Array(randomBytes(24));
    const v = new Uint8Array(randomBytes(8));
    const p = new Uint8Array(randomBytes(n));
    const node = createCipheriv('des-ede3-cbc', k, v);
    const theirs = new Uint8Array(Buffer.concat([node.update(p), node.final()]));
    assert.equal(toHex(tripleDesCbcEncrypt(p, k, v)), toHex(theirs));
    assert.equal(toHex(tripleDesCbcDecrypt(theirs, k, v)), toHex(p));
  }
});

test('bad padding, partial blocks and wrong sizes are refused, not returned', () => {
  const key = hex('0123456789abcdef23456789abcdef01456789abcdef0123');
  const iv = hex('1234567890abcdef');
  const c = hex('41a726ff4a5cd9eba9109baf71fe4653c26dbaccc0e70f00dfb050a8a93e72a489303f19316cad2d');
  const wrong = key.slice(); wrong[0] ^= 0x02;
  assert.throws(() => tripleDesCbcDecrypt(c, wrong, iv), /padding/);
  assert.throws(() => tripleDesCbcDecrypt(c.subarray(0, 39), key, iv), /whole blocks/);
  assert.throws(() => tripleDesCbcDecrypt(new Uint8Array(0), key, iv), /whole blocks/);
  assert.throws(() => tripleDesCbcDecrypt(c, key.subarray(0, 16), iv), /key of 16 bytes/);
  assert.throws(() => tripleDesCbcDecrypt(c, key, iv.subarray(0, 4)), /IV/);
  assert.throws(() => rc2CbcDecrypt(c, new Uint8Array(0), 40, iv), /key length/);
  assert.throws(() => rc2CbcDecrypt(c, hex('0102030405'), 40, iv), /padding/);
});
