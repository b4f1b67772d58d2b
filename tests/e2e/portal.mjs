// End-to-end browser tests of the portal, the operator console and the administrators' pages:
// a real `nca serve` (target/debug/nca, fresh data directory, free ports), Debian's Chromium
// driven by playwright-core, openssl and curl as the operator's tools. One node:test test per
// step of the scenario: a failing step is reported and the others still run.
//
//   node --test tests/e2e/portal.mjs   (after `cargo build`; scripts/test.sh runs it)
//
// Environment: see kit.mjs (NCA_BIN, E2E_ARTIFACTS, CHROMIUM, E2E_KEEP=1).

import { test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { e2eKit, watch, texts, CITIZEN, OPERATOR_IIN, PASSWORD } from './kit.mjs';

const kit = e2eKit('portal');
const { artifacts, work, data, run, curl, asOperator, signAsOperator, shot } = kit;
let pub;
let op;

/** P1 through the API, as an operator at the centre: identity, to-be-signed, signature, confirmation. */
const confirmThroughApi = (dir, number) => kit.confirm(dir, number, true);

/** Public keys (PEM) of what a PEM text holds: private keys or certificates. */
function publicKeys(pemText, kind) {
  const re = kind === 'key' ? /-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/g
    : /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
  return (pemText.match(re) || []).map((block) => {
    const args = kind === 'key' ? ['pkey', '-pubout'] : ['x509', '-pubkey', '-noout'];
    return run('openssl', args, { input: block }).toString().trim();
  });
}

/** Checks a PKCS#12 file with openssl: it opens with the password, both keys match its two end-entity certificates. */
function checkPkcs12(file, password) {
  const info = run('openssl', ['pkcs12', '-info', '-in', file, '-passin', `pass:${password}`, '-nodes'],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  assert.match(info, /BEGIN PRIVATE KEY/);
  const keys = publicKeys(run('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nocerts', '-nodes']).toString(), 'key');
  const certs = publicKeys(run('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nokeys', '-clcerts']).toString(), 'cert');
  const cas = run('openssl', ['pkcs12', '-in', file, '-passin', `pass:${password}`, '-nokeys', '-cacerts']).toString();
  assert.equal(keys.length, 2, 'two private keys');
  assert.equal(certs.length, 2, 'two end-entity certificates');
  assert.deepEqual([...keys].sort(), [...certs].sort(), 'the keys are the certificates\' keys');
  assert.equal((cas.match(/BEGIN CERTIFICATE/g) || []).length, 2, 'the issuing and root CA certificates');
  // A wrong password does not open it.
  assert.throws(() => run('openssl', ['pkcs12', '-in', file, '-passin', 'pass:wrong', '-nodes'], { stdio: 'ignore' }));
}

/** Fills the form as a citizen would: by the labels of the page's language. */
async function fillForm(page, lang, who) {
  const l = (k) => texts[lang][k];
  await page.getByLabel(l('field.iin'), { exact: true }).fill(who.iin);
  await page.getByLabel(l('field.surname'), { exact: true }).fill(who.surname);
  await page.getByLabel(l('field.name'), { exact: true }).fill(who.name);
  await page.getByLabel(l('field.patronymic'), { exact: true }).fill(who.patronymic);
  await page.getByLabel(l('field.email'), { exact: true }).fill('abai@example.kz');
  const region = page.getByLabel(l('field.region'), { exact: true });
  await page.waitForFunction(() => document.getElementById('region').options.length > 1);
  await region.selectOption({ index: 1 });
  await page.getByLabel(l('field.locality'), { exact: true }).selectOption({ index: 1 });
  await page.getByLabel(l('field.centre'), { exact: true }).selectOption({ index: 1 });
  await page.getByLabel(l('field.storage'), { exact: true }).selectOption('file');
  await page.getByLabel(l('field.password'), { exact: true }).fill(PASSWORD);
  await page.getByLabel(l('field.password2'), { exact: true }).fill(PASSWORD);
}

let browser;
let opDir;
let centre;

async function main(t) {
  await kit.start();
  ({ pub, op } = kit);
  centre = kit.firstCentre();
  opDir = kit.addOperator(centre);
  browser = await kit.launch();
  const citizen = await browser.newContext({ acceptDownloads: true });
  // Two cores shared with compilers: key generation and PBKDF2 can be slow.
  citizen.setDefaultTimeout(90000);

  await t.test('the English form has the labels of appendix 2 and the policy comes before it', async () => {
    const page = await citizen.newPage();
    const errors = [];
    watch(page, errors);
    const resp = await page.goto(`${pub}/?lang=en`);
    assert.match(resp.headers()['content-type'], /^text\/html/);
    for (const label of ['IIN', 'Surname', 'Name', 'Patronymic', 'E-mail', 'Region', 'Locality', 'Registration centre', 'Key storage']) {
      assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, `label ${label}`);
    }
    assert.equal(await page.getByRole('button', { name: 'Submit', exact: true }).count(), 1);
    const order = await page.evaluate(() => {
      const policy = document.querySelector('.policy');
      const form = document.getElementById('application-form');
      return Boolean(policy.compareDocumentPosition(form) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    assert.ok(order, 'policy text before the form');
    // Client-side checks: a wrong check digit and a bad e-mail are caught before sending.
    await page.getByLabel('IIN', { exact: true }).fill('850315306049');
    await page.getByLabel('E-mail', { exact: true }).fill('not-an-address');
    await page.getByRole('button', { name: 'Submit', exact: true }).click();
    await page.locator('#iin-error').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#iin-error').textContent(), texts.en['check.iin_digit']);
    assert.equal(await page.locator('#email-error').textContent(), texts.en['check.email']);
    assert.equal(await page.locator('#iin').getAttribute('aria-invalid'), 'true');
    await shot(page, 'portal-en-checks');
    // Keyboard: the first Tab reaches the skip link, which lands on the content; Tab moves
    // field to field in reading order.
    await page.reload();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    await page.getByLabel('IIN', { exact: true }).focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'surname');
    // Dependent lists: a locality only once a region is chosen.
    assert.ok(await page.locator('#locality').isDisabled());
    // Accept-Language picks the language when ?lang does not.
    const ru = await citizen.newPage();
    await ru.setExtraHTTPHeaders({ 'accept-language': 'ru-RU,ru;q=0.9,en;q=0.5' });
    await ru.goto(`${pub}/`);
    assert.equal(await ru.getAttribute('html', 'lang'), 'ru');
    assert.equal(await ru.getByLabel(texts.ru['field.iin'], { exact: true }).count(), 1);
    await ru.close();
    assert.deepEqual(errors, []);
    await page.close();
  });

  for (const lang of ['kk', 'ru', 'en']) {
    await t.test(`a citizen applies in ${lang}, is confirmed, downloads a PKCS#12 that openssl opens, answers the survey`, async () => {
      const page = await citizen.newPage();
      const errors = [];
      watch(page, errors);
      await page.goto(`${pub}/?lang=${lang}`);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      await fillForm(page, lang, CITIZEN);
      await shot(page, `portal-${lang}-filled`);
      await page.getByRole('button', { name: texts[lang]['form.submit'], exact: true }).click();
      const numberEl = page.locator('#order-number');
      await numberEl.waitFor({ state: 'visible', timeout: 120000 });
      const number = (await numberEl.textContent()).trim();
      // NNNN-NNNN-NNNC: Crockford base 32 and an ISO 7064 MOD 37-2 check character (src/workflow/number.rs).
      assert.match(number, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{3}[0-9A-Z*~$=]$/);
      await shot(page, `portal-${lang}-submitted`);

      confirmThroughApi(opDir, number);

      await page.locator('#status-link').click();
      await page.waitForURL(/\/status/);
      await page.locator('#status-text[data-status="completed"]').waitFor({ timeout: 60000 });
      assert.equal(await page.locator('#status-text').textContent(), texts[lang]['state.completed']);
      assert.ok(await page.locator('#timeline tr').count() >= 8, 'the steps');
      await page.locator('#p12-here').waitFor({ state: 'visible' });
      // A wrong password is told so and makes nothing.
      await page.getByLabel(texts[lang]['certs.password'], { exact: true }).fill('not the password');
      await page.getByRole('button', { name: texts[lang]['certs.p12_make'] }).click();
      await page.locator('#p12-error').waitFor({ state: 'visible' });
      await page.getByLabel(texts[lang]['certs.password'], { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: texts[lang]['certs.p12_make'] }).click();
      await page.locator('#p12-download').waitFor({ state: 'visible', timeout: 60000 });
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#p12-download').click()]);
      const p12 = path.join(artifacts, `citizen-${lang}.p12`);
      await download.saveAs(p12);
      checkPkcs12(p12, PASSWORD);
      await shot(page, `status-${lang}-completed`);

      await page.locator('#survey').waitFor({ state: 'visible' });
      await page.getByRole('group', { name: texts[lang]['survey.q1'] }).getByLabel(texts[lang]['survey.satisfied'], { exact: true }).check();
      await page.getByRole('group', { name: texts[lang]['survey.q2'] }).getByLabel(texts[lang]['survey.partly'], { exact: true }).check();
      await page.getByRole('button', { name: texts[lang]['survey.send'] }).click();
      await page.locator('#survey-thanks').waitFor({ state: 'visible' });
      await shot(page, `status-${lang}-survey`);
      const r = curl(`${pub}/api/v1/applications/${number}/survey?iin=${CITIZEN.iin}`);
      assert.deepEqual(r.json(), { answered: true, process: 'satisfied', information: 'partly' });
      assert.deepEqual(errors, []);
      await page.close();
    });
  }

  await t.test('a refusal is shown with its reason, on the form and on the status page', async () => {
    const page = await citizen.newPage();
    const errors = [];
    // The contract answers a refusal 422, which Chromium reports as a failed resource.
    watch(page, errors, (url, text) => url.endsWith('/api/v1/applications') && text.includes('422'));
    await page.goto(`${pub}/?lang=en`);
    await fillForm(page, 'en', { iin: OPERATOR_IIN, surname: 'Wrongname', name: 'Айгерім', patronymic: '' });
    await page.getByRole('button', { name: 'Submit', exact: true }).click();
    await page.locator('#refused').waitFor({ state: 'visible', timeout: 120000 });
    assert.equal(await page.locator('#refusal-reason').textContent(), texts.en['refusal.registry_mismatch']);
    assert.equal(await page.locator('#order-number').textContent(), '');
    await shot(page, 'portal-en-refused');
    await page.locator('#refused-status-link').click();
    await page.locator('#status-text[data-status="refused"]').waitFor({ timeout: 60000 });
    assert.equal(await page.locator('#refusal-reason').textContent(), texts.en['refusal.registry_mismatch']);
    await shot(page, 'status-en-refused');
    assert.deepEqual(errors, []);
    await page.close();
  });

  await t.test('the operator console confirms an application with an uploaded CMS', async () => {
    // An application from the API, as another client of the contract would send it.
    const csrs = ['auth', 'sign'].map((w) => {
      const key = path.join(work, `api-${w}.key`);
      const csr = path.join(work, `api-${w}.csr`);
      run('openssl', ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=x',
        '-keyout', key, '-out', csr], { stdio: 'ignore' });
      return fs.readFileSync(csr, 'utf8');
    });
    const body = JSON.stringify({
      service: 'issue',
      applicant: { ...CITIZEN, email: 'abai@example.kz' },
      registration_centre: centre,
      storage: 'file',
      requests: { auth: csrs[0], sign: csrs[1] },
    });
    const r = curl('-H', 'content-type: application/json', '--data-binary', body, `${pub}/api/v1/applications`);
    assert.equal(r.status, 201, r.body.toString());
    const number = r.json().number;

    const ctx = await browser.newContext({
      ignoreHTTPSErrors: true,
      acceptDownloads: true,
      clientCertificates: [{ origin: op, certPath: path.join(opDir, 'auth.crt'), keyPath: path.join(opDir, 'auth.key') }],
    });
    ctx.setDefaultTimeout(90000);
    const page = await ctx.newPage();
    const errors = [];
    watch(page, errors);
    const resp = await page.goto(`${op}/console/?lang=en`);
    assert.match(resp.headers()['content-type'], /^text\/html/);
    await page.locator('#whoami').filter({ hasText: OPERATOR_IIN }).waitFor();
    await page.locator(`button[data-number="${number}"]`).click();
    await page.locator('#identity-form').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#d-iin').textContent(), CITIZEN.iin);
    await page.getByLabel('Identity card', { exact: true }).check();
    await page.getByRole('button', { name: 'Record the check' }).click();
    await page.locator('#receipt').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#r-number').textContent(), `R-${number}`);
    await page.emulateMedia({ media: 'print' });
    await shot(page, 'console-receipt-print');
    await page.emulateMedia({ media: 'screen' });
    await page.locator('#confirm-form').waitFor({ state: 'visible' });
    await page.waitForFunction(() => document.getElementById('tbs-download').href.startsWith('blob:'));
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#tbs-download').click()]);
    const tbs = path.join(work, `console-${number}.txt`);
    await download.saveAs(tbs);
    // The number's check character may be a regex metacharacter ($, *): compare as text.
    assert.ok(fs.readFileSync(tbs, 'utf8').includes(`application: ${number}\n`), `to-be-signed names ${number}`);
    await page.getByLabel('Signed confirmation (CMS file)').setInputFiles(signAsOperator(opDir, tbs));
    await shot(page, 'console-confirm');
    await page.getByRole('button', { name: 'Confirm the application' }).click();
    await page.locator('#d-status[data-status="completed"]').waitFor({ timeout: 60000 });
    await shot(page, 'console-completed');
    const v = curl(`${pub}/api/v1/applications/${number}?iin=${CITIZEN.iin}`).json();
    assert.equal(v.status, 'completed');
    assert.equal(v.certificates.length, 2);
    assert.deepEqual(errors, []);
    await ctx.close();
  });

  await t.test('the administrators\' pages show CRL status, operators and the survey, and tolerate reports not there yet', async () => {
    const ctx = await browser.newContext({
      ignoreHTTPSErrors: true,
      clientCertificates: [{ origin: op, certPath: path.join(data, 'admin/auth.crt'), keyPath: path.join(data, 'admin/auth.key') }],
    });
    const page = await ctx.newPage();
    const errors = [];
    // The SLA report and the monitoring queue come from another branch; until then they are 404.
    watch(page, errors, (url, text) => /\/api\/v1\/admin\/(reports\/sla|monitoring)$/.test(url) && text.includes('404'));
    await page.goto(`${op}/admin/?lang=en`);
    await page.locator('#operators-body td', { hasText: 'active' }).first().waitFor();
    assert.ok(await page.locator('#operators-body').textContent().then((t) => t.includes(OPERATOR_IIN)));
    await page.locator('#crl-body tbody tr').first().waitFor();
    assert.ok(await page.locator('#crl-body tbody tr').count() >= 3, 'full and delta of the issuing CA, the root\'s');
    await page.locator('#survey-body', { hasText: 'Answers: 3' }).waitFor();
    await page.locator('#sla-body').filter({ hasText: /\S/ }).waitFor();
    await page.locator('#monitoring-body').filter({ hasText: /\S/ }).waitFor();
    await shot(page, 'admin');
    assert.deepEqual(errors, []);

    // The SLA report and the monitoring queue in the shapes their endpoints will answer with.
    const sla = {
      generated_at: new Date().toISOString(),
      processes: [{ process: 'P1', service: 'issue', steps: [
        { step: 'request', actor: 'applicant', deadline_seconds: 60, count: 40, p50_seconds: 20, p95_seconds: 50, max_seconds: 75, over_deadline: 1 },
        { step: 'identity', actor: 'operator', deadline_seconds: 900, count: 38, p50_seconds: 300, p95_seconds: 800, max_seconds: 1200, over_deadline: 2 },
        { step: 'notify_number', actor: 'nca', deadline_seconds: null, count: 40, p50_seconds: 0, p95_seconds: 1, max_seconds: 1, over_deadline: 0 },
      ] }],
    };
    const monitoring = { pending: 2, delivered: 120, parked: 1, oldest_pending_age_seconds: 42,
      parked_messages: [{ message_id: 'm-1', application: 'ABCD-EFGH-JKLM', status: 'parked', last_http_status: 500, last_error: 'gateway down', attempts: 12 }] };
    const mock = await ctx.newPage();
    watch(mock, errors);
    await mock.route('**/api/v1/admin/reports/sla', (r) => r.fulfill({ json: sla }));
    await mock.route('**/api/v1/admin/monitoring', (r) => r.fulfill({ json: monitoring }));
    await mock.goto(`${op}/admin/?lang=ru`);
    await mock.locator('#sla-body svg.chart').waitFor();
    assert.equal(await mock.locator('#sla-body svg.chart rect.over').count(), 2, 'the bars over the deadline');
    assert.equal(await mock.locator('#sla-body svg.chart line.deadline').count(), 2, 'a deadline line where there is a deadline');
    await mock.locator('#monitoring-body td', { hasText: 'gateway down' }).waitFor();
    await shot(mock, 'admin-sla-sample-ru');
    assert.deepEqual(errors, []);
    await ctx.close();
  });

  await citizen.close();
}

test('the portal, the console and the admin pages in a browser', async (t) => {
  try {
    await main(t);
  } finally {
    await kit.finish();
  }
});
