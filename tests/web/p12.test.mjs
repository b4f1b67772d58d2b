// The PKCS#12 reader (web/assets/p12read.js): files openssl made (default and -legacy, P-256
// and RSA), the file the portal makes (web/assets/pkcs12.js), wrong passwords, truncations and
// hostile structures.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPkcs12, Pkcs12Error, pkcs12Kdf } from '../../web/assets/p12read.js';
import { pkcs12 } from '../../web/assets/pkcs12.js';
import { seq, int, oid, octets, explicit, nul } from '../../web/assets/der.js';

// Node 18 (Debian 12's) has WebCrypto only as a module; the pages' code expects the global.
globalThis.crypto ??= (await import('node:crypto')).webcrypto;

const fixture = (f) => new Uint8Array(readFileSync(new URL(`fixtures/${f}`, import.meta.url)));
const PASSWORD = 'Пароль 1'; // what the fixtures were exported with (non-ASCII on purpose)
const hex = (b) => Buffer.from(b).toString('hex');

async function refused(bytes, password, code) {
  await assert.rejects(readPkcs12(bytes, password), (e) => {
    assert.ok(e instanceof Pkcs12Error, `not a Pkcs12Error: ${e}`);
    if (code) assert.equal(e.code, code, e.message);
    return true;
  });
}

for (const kind of ['ec', 'rsa']) {
  for (const variant of ['', '-legacy']) {
    test(`openssl pkcs12 -export${variant} with a ${kind} key opens, and its key and certificate are the originals`, async () => {
      const p = await readPkcs12(fixture(`${kind}${variant}.p12`), PASSWORD);
      assert.equal(p.keys.length, 1);
      assert.equal(p.certificates.length, 1);
      assert.equal(hex(p.keys[0].pkcs8), hex(fixture(`${kind}.pkcs8.der`)));
      assert.equal(hex(p.certificates[0].der), hex(fixture(`${kind}.crt.der`)));
      assert.equal(hex(p.keys[0].localKeyId), hex(p.certificates[0].localKeyId));
      await refused(fixture(`${kind}${variant}.p12`), 'wrong password', 'password');
    });
  }
}

test('the portal\'s own file opens here and with openssl', async () => {
  const entries = [{ name: 'AUTH 1', pkcs8: fixture('ec.pkcs8.der'), certificate: fixture('ec.crt.der') }];
  const der = await pkcs12(entries, [fixture('rsa.crt.der')], 'секрет-42');
  const p = await readPkcs12(der, 'секрет-42');
  assert.equal(hex(p.keys[0].pkcs8), hex(fixture('ec.pkcs8.der')));
  assert.equal(p.keys[0].name, 'AUTH 1');
  assert.equal(p.certificates.length, 2);
  const dir = mkdtempSync(join(tmpdir(), 'nca-p12-'));
  writeFileSync(join(dir, 'p.p12'), der);
  const out = execFileSync('openssl', ['pkcs12', '-in', join(dir, 'p.p12'), '-passin', 'pass:секрет-42', '-nodes']).toString();
  assert.match(out, /BEGIN PRIVATE KEY/);
  await refused(der, 'секрет-43', 'password');
});

test('the PKCS#12 KDF gives what RFC 7292 implementations give (SHA-1, the MAC key of a known file)', async () => {
  // Key for ID 1, SHA-1, password "smeg", salt 0a58cf64530d823f, 1 iteration: the vector
  // OpenSSL's and Bouncy Castle's tests use.
  const sha1 = { name: 'SHA-1', u: 20, v: 64 };
  const salt = Uint8Array.from([0x0a, 0x58, 0xcf, 0x64, 0x53, 0x0d, 0x82, 0x3f]);
  assert.equal(hex(await pkcs12Kdf(sha1, 'smeg', salt, 1, 1, 24)), '8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3');
  assert.equal(hex(await pkcs12Kdf(sha1, 'smeg', salt, 1, 2, 8)), '79993dfe048d3b76');
});

test('every truncation is refused as format, and nothing else escapes', async () => {
  const file = fixture('ec-legacy.p12');
  for (let n = 0; n < file.length; n++) await refused(file.subarray(0, n), PASSWORD, 'format');
  await refused(new Uint8Array(0), PASSWORD, 'format');
  await refused('not bytes', PASSWORD, 'format');
  await refused(new Uint8Array((1 << 20) + 1), PASSWORD, 'format');
});

test('flipped bytes anywhere give a Pkcs12Error, never a crash or a wrong key', async () => {
  const file = fixture('ec.p12');
  for (let i = 0; i < file.length; i += 23) {
    const bad = file.slice();
    bad[i] ^= 0x41;
    try {
      const p = await readPkcs12(bad, PASSWORD);
      // A flip outside anything the MAC covers (the MAC's own salt or digest cannot be: they
      // would fail it) can only be in unauthenticated framing the reader accepted; the key
      // must still be the original.
      assert.equal(hex(p.keys[0].pkcs8), hex(fixture('ec.pkcs8.der')), `byte ${i}`);
    } catch (e) {
      assert.ok(e instanceof Pkcs12Error, `byte ${i}: ${e}`);
    }
  }
});

test('hostile structures: an absurd iteration count, a wrong version, unknown algorithms', async () => {
  const authSafe = seq();
  const contentInfo = seq(oid('1.2.840.113549.1.7.1'), explicit(0, octets(authSafe)));
  const mac = (iterations) => seq(seq(seq(oid('1.3.14.3.2.26'), nul()), octets(new Uint8Array(20))), octets(new Uint8Array(8)), int(iterations));
  await refused(seq(int(3), contentInfo, mac(0x7fffffff)), PASSWORD, 'unsupported');
  await refused(seq(int(2), contentInfo), PASSWORD, 'format');
  await refused(seq(int(3), seq(oid('1.2.840.113549.1.7.2'), explicit(0, octets(authSafe)))), PASSWORD, 'unsupported');
  const macMd5 = seq(seq(seq(oid('1.2.840.113549.2.5'), nul()), octets(new Uint8Array(16))), octets(new Uint8Array(8)), int(1));
  await refused(seq(int(3), contentInfo, macMd5), PASSWORD, 'unsupported');
  await refused(seq(int(3), contentInfo, mac(1)), PASSWORD, 'password');
  // A shrouded key under an unknown scheme, no MAC.
  const bag = seq(oid('1.2.840.113549.1.12.10.1.2'), explicit(0, seq(seq(oid('1.2.3.4')), octets(new Uint8Array(16)))));
  const withBag = seq(seq(oid('1.2.840.113549.1.7.1'), explicit(0, octets(seq(bag)))));
  await refused(seq(int(3), seq(oid('1.2.840.113549.1.7.1'), explicit(0, octets(withBag)))), PASSWORD, 'unsupported');
  // An empty but well-formed file without a MAC opens to nothing.
  const empty = await readPkcs12(seq(int(3), contentInfo), PASSWORD);
  assert.deepEqual(empty, { keys: [], certificates: [] });
});
