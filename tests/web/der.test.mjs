// The DER reader (web/assets/der.js) on good, truncated and hostile input.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  read, readWhole, children, fields, readOid, readSmallInt, certificateParts, DerError, oid, int, seq, octets,
} from '../../web/assets/der.js';

const fixture = (f) => new Uint8Array(readFileSync(new URL(`fixtures/${f}`, import.meta.url)));
const b = (...x) => new Uint8Array(x);

test('reads what the encoder writes', () => {
  const s = seq(int(3), oid('1.2.840.113549.1.12.10.1.2'), octets(new Uint8Array(300)));
  const f = fields(readWhole(s), 0x30, 3);
  assert.equal(readSmallInt(f[0]), 3);
  assert.equal(readOid(f[1]), '1.2.840.113549.1.12.10.1.2');
  assert.equal(f[2].value.length, 300);
  for (const o of ['2.5.29.15', '1.3.14.3.2.26', '2.999.1', '0.9.2342.19200300.100.1.1']) assert.equal(readOid(read(oid(o))), o);
});

test('a certificate gives its serial, issuer, key algorithm and key usage', () => {
  const der = fixture('ec.crt.der');
  const p = certificateParts(der);
  const serial = execFileSync('openssl', ['x509', '-inform', 'DER', '-noout', '-serial', '-in',
    new URL('fixtures/ec.crt.der', import.meta.url).pathname]).toString().trim().split('=')[1].toLowerCase();
  assert.equal(Buffer.from(p.serial.value).toString('hex').replace(/^0+/, ''), serial.replace(/^0+/, ''));
  assert.equal(p.keyAlgorithm, '1.2.840.10045.2.1');
  assert.equal(p.issuer.tag, 0x30);
  assert.equal(certificateParts(fixture('rsa.crt.der')).keyAlgorithm, '1.2.840.113549.1.1.1');
});

test('every truncation of a certificate is refused with a DerError', () => {
  const der = fixture('rsa.crt.der');
  for (let n = 0; n < der.length; n++) {
    assert.throws(() => certificateParts(der.subarray(0, n)), DerError, `prefix of ${n} bytes`);
  }
});

test('hostile encodings are refused', () => {
  const bad = {
    empty: b(),
    'one byte': b(0x30),
    'indefinite length': b(0x30, 0x80, 0x00, 0x00),
    'length of 5 octets': b(0x04, 0x85, 1, 0, 0, 0, 0),
    'length 2^32-1': b(0x04, 0x84, 0xff, 0xff, 0xff, 0xff),
    'non-minimal length': b(0x04, 0x81, 0x01, 0x00),
    'leading zero length': b(0x04, 0x82, 0x00, 0x81, ...new Array(0x81).fill(0)),
    'length past the end': b(0x04, 0x05, 1, 2),
    'length bytes missing': b(0x04, 0x82, 0x01),
    'multi-byte tag': b(0x1f, 0x81, 0x00, 0x00),
  };
  for (const [name, bytes] of Object.entries(bad)) assert.throws(() => readWhole(bytes), DerError, name);
  assert.throws(() => readWhole(b(0x05, 0x00, 0x00)), /trailing/);
  assert.throws(() => read(b(0x05, 0x00), 5), DerError);
  assert.throws(() => read(b(0x05, 0x00), -1), DerError);
  assert.throws(() => read([0x05, 0x00]), DerError);
  assert.throws(() => children(b(0x05, 0x00, 0x30)), DerError);
  assert.throws(() => fields(read(b(0x31, 0x00)), 0x30), /expected tag 0x30/);
  assert.throws(() => fields(read(b(0x30, 0x00)), 0x30, 1), /at least 1/);
  assert.throws(() => readOid(read(b(0x06, 0x00))), DerError);
  assert.throws(() => readOid(read(b(0x06, 0x02, 0x2a, 0x86))), /truncated/);
  assert.throws(() => readOid(read(b(0x06, 0x02, 0x2a, 0x80))), DerError);
  assert.throws(() => readOid(read(b(0x06, 0x0a, 0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))), /too large/);
  assert.throws(() => readSmallInt(read(b(0x02, 0x01, 0xff))), DerError);
  assert.throws(() => readSmallInt(read(b(0x02, 0x00))), DerError);
  assert.throws(() => readSmallInt(read(b(0x02, 0x04, 0x7f, 0xff, 0xff, 0xff)), 1000), /over 1000/);
});

test('random bytes never read as anything but a DerError or a value inside the input', () => {
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed & 0xff; };
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from({ length: 1 + (i % 40) }, rnd);
    try {
      const n = read(bytes);
      assert.ok(n.end <= bytes.length);
    } catch (e) {
      assert.ok(e instanceof DerError, e);
    }
  }
});
