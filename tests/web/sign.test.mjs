// Signing in the browser (web/assets/sign.js): the CMS SignedData the cabinet files P2 and P3
// with, checked by `openssl cms -verify`; the key check that pairs a key with its certificate.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signer, signedData, certifies, keyKind } from '../../web/assets/sign.js';
import { seq, int, oid, nul, octets } from '../../web/assets/der.js';

// Node 18 (Debian 12's) has WebCrypto only as a module; the pages' code expects the global.
globalThis.crypto ??= (await import('node:crypto')).webcrypto;

const fixture = (f) => new Uint8Array(readFileSync(new URL(`fixtures/${f}`, import.meta.url)));

for (const kind of ['ec', 'rsa']) {
  test(`a ${kind} SignedData verifies with openssl cms and carries the content`, async () => {
    const s = await signer(fixture(`${kind}.pkcs8.der`));
    assert.equal(s.kind, kind);
    const content = new TextEncoder().encode('{"service":"revoke","applicant":{"iin":"850315306048"}}');
    const cms = await signedData(content, fixture(`${kind}.crt.der`), s, Math.floor(Date.now() / 1000));
    const dir = mkdtempSync(join(tmpdir(), 'nca-cms-'));
    writeFileSync(join(dir, 'm.p7s'), cms);
    const out = execFileSync('openssl', ['cms', '-verify', '-noverify', '-binary', '-inform', 'DER', '-in', join(dir, 'm.p7s')]);
    assert.equal(out.toString(), new TextDecoder().decode(content));
    const printed = execFileSync('openssl', ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', join(dir, 'm.p7s')]).toString();
    assert.match(printed, /signingTime/);
    assert.match(printed, /messageDigest/);
  });
}

test('a key certifies only its own certificate', async () => {
  const ec = await signer(fixture('ec.pkcs8.der'));
  assert.equal(await certifies(fixture('ec.crt.der'), ec), true);
  assert.equal(await certifies(fixture('rsa.crt.der'), ec), false);
});

test('keys of other kinds are refused', () => {
  const dsa = seq(int(0), seq(oid('1.2.840.10040.4.1'), nul()), octets(new Uint8Array(20)));
  assert.throws(() => keyKind(dsa), /only P-256 and RSA/);
  assert.throws(() => keyKind(new Uint8Array([0x30, 0x05])), /DER/);
});
