// End-to-end browser tests of the personal cabinet: a real `nca serve`, Debian's Chromium driven
// by playwright-core, openssl as the independent client (PKCS#12, OCSP), curl as the operator.
//
//   node --test tests/e2e/cabinet.mjs  (after `cargo build`; scripts/test.sh runs it)
//
// P1 in the browser → the PKCS#12 downloaded → sign-in with that file → P2 from the cabinet →
// the operator confirms → the new PKCS#12 opens with openssl and the old pair is revoked in
// OCSP → P3 of the new pair by keyboard only → openssl ocsp says revoked; sign-in with a file
// `openssl pkcs12 -export -legacy` made; a wrong password and a revoked certificate refused in
// words; a legal entity's employee through P1; the cabinet in kk, ru and en.
// One node:test test per step: a failing step is reported and the others still run.
// Environment: see kit.mjs (NCA_BIN, E2E_ARTIFACTS, CHROMIUM, E2E_KEEP=1).

import { test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { e2eKit, watch, texts, CITIZEN, OPERATOR_IIN, PASSWORD } from './kit.mjs';

const kit = e2eKit('cabinet', { sub: true });
const { artifacts, work, data, run, curl, asOperator, confirm, shot } = kit;
const ORGANISATION = { bin: '150540041064', name: 'ТОО «Дала Технолоджис»' };
const NEW_PASSWORD = 'battery staple 43';
let pub;
let op;

/** The end-entity certificates and keys of a PKCS#12 file, by openssl: [{cert, key, sign}] (PEM). */
function pairsOf(file, password) {
  const pass = `pass:${password}`;
  const certs = run('openssl', ['pkcs12', '-in', file, '-passin', pass, '-nokeys', '-clcerts']).toString()
    .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g);
  const keys = run('openssl', ['pkcs12', '-in', file, '-passin', pass, '-nocerts', '-nodes']).toString()
    .match(/-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----\n/g);
  assert.equal(certs.length, 2, 'two certificates');
  assert.equal(keys.length, 2, 'two keys');
  const pub = (block, kind) => run('openssl', kind === 'key' ? ['pkey', '-pubout'] : ['x509', '-pubkey', '-noout'], { input: block }).toString();
  return certs.map((cert) => ({
    cert,
    key: keys.find((k) => pub(k, 'key') === pub(cert, 'cert')),
    sign: run('openssl', ['x509', '-noout', '-ext', 'keyUsage'], { input: cert }).toString().includes('Non Repudiation'),
  }));
}

/** What `openssl ocsp` says of a certificate (PEM): good, revoked, unknown. */
function ocsp(certPem) {
  const f = path.join(work, `ocsp-${Math.random().toString(16).slice(2)}.pem`);
  fs.writeFileSync(f, certPem);
  const out = run('openssl', ['ocsp', '-issuer', path.join(data, 'ca/issuing.pem'), '-cert', f, '-url', `${pub}/ocsp`,
    '-CAfile', path.join(data, 'ca/root.pem'), '-no_nonce'],
  { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  return /: (good|revoked|unknown)/.exec(out)?.[1];
}

// A refused sign-in, an ended session, a refused application answer 401/403/422: Chromium logs
// each as a failed resource. The page shows them in words; the tests check the words.
const refusalsExpected = (url, text) => /\/api\/v1\/(cabinet|applications)/.test(url) && /40[13]|422/.test(text);

async function fillForm(page, lang, who, organisation) {
  const l = (k) => texts[lang][k];
  if (organisation) {
    await page.getByLabel(l('field.applicant_type'), { exact: true }).selectOption({ label: l('applicant.employee') });
    await page.getByLabel(l('field.bin'), { exact: true }).fill(organisation.bin);
    await page.getByLabel(l('field.organisation'), { exact: true }).fill(organisation.name);
    await page.getByLabel(l('field.role'), { exact: true }).selectOption({ label: l('role.first-head') });
  }
  await page.getByLabel(l('field.iin'), { exact: true }).fill(who.iin);
  await page.getByLabel(l('field.surname'), { exact: true }).fill(who.surname);
  await page.getByLabel(l('field.name'), { exact: true }).fill(who.name);
  await page.getByLabel(l('field.patronymic'), { exact: true }).fill(who.patronymic);
  await page.getByLabel(l('field.email'), { exact: true }).fill('abai@example.kz');
  await page.waitForFunction(() => document.getElementById('region').options.length > 1);
  await page.getByLabel(l('field.region'), { exact: true }).selectOption({ index: 1 });
  await page.getByLabel(l('field.locality'), { exact: true }).selectOption({ index: 1 });
  await page.getByLabel(l('field.centre'), { exact: true }).selectOption({ index: 1 });
  await page.getByLabel(l('field.storage'), { exact: true }).selectOption('file');
  await page.getByLabel(l('field.password'), { exact: true }).fill(PASSWORD);
  await page.getByLabel(l('field.password2'), { exact: true }).fill(PASSWORD);
}

/** On the status page of `number` (this browser holds its keys): the PKCS#12 made and saved. */
async function downloadPkcs12(page, lang, password, name) {
  await page.locator('#status-text[data-status="completed"]').waitFor({ timeout: 60000 });
  await page.locator('#p12-here').waitFor({ state: 'visible' });
  await page.getByLabel(texts[lang]['certs.password'], { exact: true }).fill(password);
  await page.getByRole('button', { name: texts[lang]['certs.p12_make'] }).click();
  await page.locator('#p12-download').waitFor({ state: 'visible', timeout: 60000 });
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#p12-download').click()]);
  const file = path.join(artifacts, `${name}.p12`);
  await download.saveAs(file);
  return file;
}

/** Signs in to the cabinet with a key file; returns once the lists show or an error does. */
async function signIn(page, lang, file, password) {
  const l = (k) => texts[lang][k];
  await page.goto(`${pub}/cabinet/?lang=${lang}`);
  await page.getByLabel(l('cabinet.key_file'), { exact: true }).setInputFiles(file);
  await page.getByLabel(l('cabinet.password'), { exact: true }).fill(password);
  await page.getByRole('button', { name: l('cabinet.sign_in'), exact: true }).click();
  await Promise.race([
    page.getByRole('heading', { name: l('cabinet.my_certificates'), exact: true }).waitFor({ timeout: 90000 }),
    page.locator('#signin-error:not([hidden])').waitFor({ timeout: 90000 }),
  ]);
}

let browser;
let opDir;

async function main(t) {
  await kit.start();
  ({ pub, op } = kit);
  opDir = kit.addOperator(kit.firstCentre());
  browser = await kit.launch();
  const citizen = await browser.newContext({ acceptDownloads: true });
  citizen.setDefaultTimeout(90000);

  let firstFile;
  let secondFile;
  let secondPairs;

  await t.test('P1 in the browser, the PKCS#12 downloaded, sign-in with it (a wrong password told in words first)', async () => {
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors, refusalsExpected);
    await page.goto(`${pub}/?lang=en`);
    assert.equal(await page.getByRole('link', { name: 'Personal cabinet', exact: true }).count(), 1);
    await fillForm(page, 'en', CITIZEN);
    await page.getByRole('button', { name: 'Submit', exact: true }).click();
    await page.locator('#order-number').waitFor({ state: 'visible', timeout: 120000 });
    const number = (await page.locator('#order-number').textContent()).trim();
    confirm(opDir, number, true);
    await page.locator('#status-link').click();
    firstFile = await downloadPkcs12(page, 'en', PASSWORD, 'first');

    // The keys the portal kept in this browser sign in too, with the form's password.
    await page.goto(`${pub}/cabinet/?lang=en`);
    await page.getByLabel('Password of the kept keys', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in with these keys', exact: true }).click();
    await page.getByRole('heading', { name: 'My certificates', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByLabel('Key file', { exact: true }).waitFor();

    await signIn(page, 'en', firstFile, 'not the password');
    assert.equal(await page.locator('#signin-error').textContent(), texts.en['cabinet.error.password']);
    await shot(page, 'signin-wrong-password');
    await signIn(page, 'en', firstFile, PASSWORD);
    assert.equal(await page.locator('#certs tr[data-status="valid"]').count(), 2);
    assert.equal(await page.getByRole('heading', { name: 'My applications', exact: true }).count(), 1);
    assert.ok((await page.locator('#apps').textContent()).includes(number));
    await shot(page, 'cabinet-en');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await t.test('P2 from the cabinet: confirmed, the new PKCS#12 opens with openssl, the old pair is revoked in OCSP', async () => {
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors, refusalsExpected);
    await signIn(page, 'en', firstFile, PASSWORD);
    await page.getByRole('button', { name: 'Reissue', exact: true }).click();
    // The form shows once it is filled from the certificate's data.
    await page.locator('#reissue:not([hidden])').waitFor();
    assert.equal(await page.getByLabel('E-mail', { exact: true }).inputValue(), 'abai@example.kz');
    assert.notEqual(await page.getByLabel('Registration centre', { exact: true }).inputValue(), '');
    await page.getByLabel('New key password', { exact: true }).fill(NEW_PASSWORD);
    // A mistyped repetition is caught before anything is made or sent.
    await page.getByLabel('Repeat the new key password', { exact: true }).fill(`${NEW_PASSWORD}!`);
    await page.getByRole('button', { name: 'Sign and submit', exact: true }).click();
    await page.locator('#new-password2-error').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#new-password2-error').textContent(), texts.en['check.password2']);
    await page.getByLabel('Repeat the new key password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Sign and submit', exact: true }).click();
    await page.locator('#order-number').waitFor({ state: 'visible', timeout: 120000 });
    const number = (await page.locator('#order-number').textContent()).trim();
    await shot(page, 'reissue-submitted');
    confirm(opDir, number, false);
    await page.locator('#reissue-status').click();
    secondFile = await downloadPkcs12(page, 'en', NEW_PASSWORD, 'second');
    secondPairs = pairsOf(secondFile, NEW_PASSWORD);
    assert.ok(secondPairs.every((p) => p.key), 'each key of the new file is its certificate\'s');
    for (const p of pairsOf(firstFile, PASSWORD)) assert.equal(ocsp(p.cert), 'revoked', 'the superseded pair');
    for (const p of secondPairs) assert.equal(ocsp(p.cert), 'good', 'the new pair');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await t.test('sign-in with a file openssl pkcs12 -export -legacy made (3DES key, RC2 certificates, SHA-1 MAC), in Russian', async () => {
    const auth = secondPairs.find((p) => !p.sign);
    fs.writeFileSync(path.join(work, 'auth.key'), auth.key);
    fs.writeFileSync(path.join(work, 'auth.crt'), auth.cert);
    const legacy = path.join(artifacts, 'legacy.p12');
    run('openssl', ['pkcs12', '-export', '-legacy', '-inkey', path.join(work, 'auth.key'), '-in', path.join(work, 'auth.crt'),
      '-certfile', path.join(data, 'ca/issuing.pem'), '-passout', 'pass:legacy pass', '-out', legacy]);
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors, refusalsExpected);
    await signIn(page, 'ru', legacy, 'legacy pass');
    assert.equal(await page.locator('#certs tr[data-status="valid"]').count(), 2, await page.locator('#signin-error').textContent());
    assert.equal(await page.getByRole('button', { name: texts.ru['cabinet.sign_out'], exact: true }).count(), 1);
    await shot(page, 'cabinet-ru-legacy');
    // Signing needs the SIGN key, which this file does not hold: said in words.
    await page.getByRole('button', { name: texts.ru['cabinet.revoke'], exact: true }).click();
    assert.equal(await page.locator('#action-error').textContent(), texts.ru['cabinet.error.no_sign']);
    await page.getByRole('button', { name: texts.ru['cabinet.sign_out'], exact: true }).click();
    await page.getByLabel(texts.ru['cabinet.key_file'], { exact: true }).waitFor();
    const r = await page.evaluate(async () => (await fetch('/api/v1/cabinet/certificates')).status);
    assert.equal(r, 401, 'signed out');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await t.test('P3 of the new pair by keyboard only; openssl ocsp says revoked; the revoked certificate cannot sign in', async () => {
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors, refusalsExpected);
    await signIn(page, 'en', secondFile, NEW_PASSWORD);
    assert.equal(await page.locator('#certs tr[data-status="valid"]').count(), 2);
    // From the page's start, Tab to "Revoke" and on through the form; no mouse.
    await page.evaluate(() => document.activeElement?.blur());
    const tabTo = async (test, what) => {
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate(test)) return;
      }
      throw new Error(`Tab never reached ${what}`);
    };
    await tabTo(() => document.activeElement?.id === 'revoke-open', 'Revoke');
    await page.keyboard.press('Enter');
    await page.locator('#revoke:not([hidden])').waitFor();
    assert.equal(await page.locator('#revoke-list input:checked').count(), 2, 'all in force chosen by default');
    await tabTo(() => document.activeElement?.id === 'reason', 'Reason');
    // The first option, keyCompromise: Home on a closed select.
    await page.keyboard.press('Home');
    assert.equal(await page.locator('#reason').inputValue(), 'keyCompromise');
    await tabTo(() => document.activeElement?.id === 'revoke-submit', 'Sign and revoke');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Sign and revoke');
    await page.keyboard.press('Enter');
    await page.locator('#revoke-result p').waitFor({ timeout: 90000 });
    assert.match(await page.locator('#revoke-result').textContent(), /Revoked \(application/);
    await shot(page, 'revoked-keyboard');
    for (const p of secondPairs) assert.equal(ocsp(p.cert), 'revoked', 'OCSP right after P3');
    // The AUTH certificate is revoked: the session has ended, and a new sign-in is refused in words.
    await page.locator('#signin-error:not([hidden])').waitFor();
    assert.equal(await page.locator('#signin-error').textContent(), texts.en['cabinet.signed_out_revoked']);
    assert.ok(await page.locator('#cabinet').isHidden(), 'the lists of an ended session are gone');
    assert.match(await page.locator('#revoke-result').textContent(), /Revoked \(application/, 'the result stays');
    await signIn(page, 'en', secondFile, NEW_PASSWORD);
    assert.equal(await page.locator('#signin-error').textContent(), texts.en['error.sign_in_certificate_revoked']);
    await shot(page, 'signin-revoked');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await t.test('a legal entity\'s employee applies through P1 and gets the legal profiles', async () => {
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors);
    await page.goto(`${pub}/?lang=en`);
    await page.getByLabel('Applicant type', { exact: true }).selectOption({ label: 'Employee of a legal entity' });
    // The BIN is checked in the browser like the IIN.
    await page.getByLabel('BIN', { exact: true }).fill('150540041065');
    await page.getByRole('button', { name: 'Submit', exact: true }).click();
    await page.locator('#bin-error').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#bin-error').textContent(), texts.en['check.bin_digit']);
    await fillForm(page, 'en', CITIZEN, ORGANISATION);
    await page.getByRole('button', { name: 'Submit', exact: true }).click();
    await page.locator('#order-number').waitFor({ state: 'visible', timeout: 120000 });
    const number = (await page.locator('#order-number').textContent()).trim();
    confirm(opDir, number, true);
    const v = curl(`${pub}/api/v1/applications/${number}?iin=${CITIZEN.iin}`).json();
    const profiles = v.certificates.map((s) => curl(`${pub}/api/v1/certificates/${s}`).json().profile).sort();
    assert.deepEqual(profiles, ['legal-auth', 'legal-sign']);
    const pem = curl(`${pub}/api/v1/applications/${number}/certificates?iin=${CITIZEN.iin}`).body.toString();
    const subject = run('openssl', ['x509', '-noout', '-subject', '-nameopt', 'utf8'], { input: pem }).toString();
    assert.ok(subject.includes(ORGANISATION.name) && subject.includes(ORGANISATION.bin), subject);
    await shot(page, 'legal-entity-submitted');

    // In Kazakh, with the keys the portal kept in this browser: the legal pair is listed.
    await page.goto(`${pub}/cabinet/?lang=kk`);
    // The list is filled from IndexedDB after the page loads: wait for it before reading it.
    await page.waitForFunction(() => document.getElementById('kept')?.options.length > 0);
    assert.equal(await page.locator('#kept').inputValue(), number, 'the newest kept keys first');
    await page.getByLabel(texts.kk['cabinet.kept_password'], { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: texts.kk['cabinet.kept_sign_in'], exact: true }).click();
    await page.getByRole('heading', { name: texts.kk['cabinet.my_certificates'], exact: true }).waitFor();
    for (const serial of v.certificates) {
      assert.equal(await page.locator(`#certs tr[data-serial="${serial}"]`).getAttribute('data-status'), 'valid');
    }
    await shot(page, 'cabinet-kk-legal');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await t.test('the cabinet speaks kk, ru and en with the names the issue lists in English', async () => {
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors);
    for (const lang of ['kk', 'ru', 'en']) {
      const l = (k) => texts[lang][k];
      await page.goto(`${pub}/cabinet/?lang=${lang}`);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.equal(await page.getByLabel(l('cabinet.key_file'), { exact: true }).count(), 1);
      assert.equal(await page.getByLabel(l('cabinet.password'), { exact: true }).count(), 1);
      assert.equal(await page.getByRole('button', { name: l('cabinet.sign_in'), exact: true }).count(), 1);
      await page.goto(`${pub}/status?lang=${lang}`);
      assert.equal(await page.getByRole('link', { name: l('cabinet.link'), exact: true }).count(), 1);
    }
    const en = texts.en;
    assert.deepEqual(
      ['cabinet.link', 'cabinet.key_file', 'cabinet.password', 'cabinet.sign_in', 'cabinet.sign_out', 'cabinet.my_certificates',
        'cabinet.my_applications', 'cabinet.reissue', 'cabinet.revoke', 'cabinet.new_password', 'cabinet.sign_and_submit',
        'cabinet.reason', 'cabinet.sign_and_revoke', 'field.applicant_type', 'applicant.individual', 'applicant.employee',
        'field.bin', 'field.organisation', 'field.role'].map((k) => en[k]),
      ['Personal cabinet', 'Key file', 'Password', 'Sign in', 'Sign out', 'My certificates', 'My applications', 'Reissue',
        'Revoke', 'New key password', 'Sign and submit', 'Reason', 'Sign and revoke', 'Applicant type', 'Individual',
        'Employee of a legal entity', 'BIN', 'Organisation', 'Role']);
    await shot(page, 'status-en-link');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await citizen.close();
}

test('the personal cabinet in a browser', async (t) => {
  try {
    await main(t);
  } finally {
    await kit.finish();
  }
});
