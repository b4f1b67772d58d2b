// What the browser tests share: a real `nca serve` in a fresh directory, the clients around it
// (curl, openssl, the operator's credentials), Chromium, and the page-watching helpers. Each test
// file makes one kit: `const kit = e2eKit('portal')`.
//
// Environment: NCA_BIN (default target/debug/nca), E2E_ARTIFACTS (default target/e2e-artifacts:
// screenshots, PKCS#12 files, the server's log), CHROMIUM (default /usr/bin/chromium), E2E_KEEP=1
// keeps the temporary directory.

import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const NCA = process.env.NCA_BIN || path.join(root, 'target/debug/nca');

/** The pages' texts by language (web/i18n). */
export const texts = Object.fromEntries(['kk', 'ru', 'en'].map((l) =>
  [l, JSON.parse(fs.readFileSync(path.join(root, 'web/i18n', `${l}.json`), 'utf8'))]));

// The demo registry's people (ca-config/registry-sample.csv).
export const CITIZEN = { iin: '850315306048', surname: 'Құнанбай', name: 'Абай', patronymic: 'Құнанбайұлы' };
export const OPERATOR_IIN = '920708497088';
export const PASSWORD = 'correct horse 42';

/** A kit for one test file; `name` names its temporary directory and, when `sub`, its artifacts' folder. */
export function e2eKit(name, { sub = false } = {}) {
  const base = process.env.E2E_ARTIFACTS || path.join(root, 'target/e2e-artifacts');
  const artifacts = sub ? path.join(base, name) : base;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `nca-e2e-${name}-`));
  const data = path.join(work, 'data');
  fs.mkdirSync(artifacts, { recursive: true });
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NCA_DATA_DIR: data,
    NCA_LISTEN: '127.0.0.1:0',
    NCA_OPERATOR_LISTEN: '127.0.0.1:0',
    NCA_KEY_STORE: 'software',
    NCA_LOG: 'info,sqlx=warn',
  };
  const kit = { artifacts, work, data, env, server: null, pub: '', op: '', browser: null };

  kit.run = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: work, env, maxBuffer: 1 << 26, ...opts });

  kit.nca = (...args) => kit.run(NCA, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString();

  /** Starts `nca serve` and waits for its listening line. */
  kit.start = async () => {
    const log = fs.openSync(path.join(artifacts, 'serve.log'), 'w');
    kit.server = spawn(NCA, ['serve'], { cwd: work, env, stdio: ['ignore', 'pipe', log] });
    const line = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('nca serve did not start in 180 s')), 180000);
      kit.server.on('exit', (code) => reject(new Error(`nca serve exited: ${code}`)));
      createInterface({ input: kit.server.stdout }).on('line', (l) => {
        if (l.startsWith('listening: ')) { clearTimeout(timer); resolve(l); }
      });
    });
    kit.pub = /public=(\S+)/.exec(line)[1];
    kit.op = /operator=(\S+)/.exec(line)[1];
    console.log(`nca serve: public ${kit.pub}, operator ${kit.op}; artifacts in ${artifacts}`);
  };

  /** curl: {status, body (Buffer), json()}. */
  kit.curl = (...args) => {
    const out = path.join(work, `curl-${Math.random().toString(16).slice(2)}`);
    const status = Number(kit.run('curl', ['-s', '--max-time', '60', '-o', out, '-w', '%{http_code}', ...args]).toString());
    const body = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0);
    fs.rmSync(out, { force: true });
    return { status, body, json: () => JSON.parse(body.toString()) };
  };

  /** A request on the operator listener with the credentials in `dir`. */
  kit.asOperator = (dir, method, p, body, ctype = 'application/json') => {
    const args = ['--cacert', path.join(data, 'ca/root.pem'), '--cert', path.join(dir, 'auth.crt'),
      '--key', path.join(dir, 'auth.key'), '-X', method];
    if (body !== undefined) {
      const f = path.join(work, `body-${Math.random().toString(16).slice(2)}`);
      fs.writeFileSync(f, body);
      args.push('-H', `content-type: ${ctype}`, '--data-binary', `@${f}`);
    }
    return kit.curl(...args, `${kit.op}${p}`);
  };

  /** The operator's CMS signature (openssl cms, as `nca station sign` makes it) over `file`. */
  kit.signAsOperator = (dir, file) => {
    const out = `${file}.p7s`;
    kit.run('openssl', ['cms', '-sign', '-binary', '-nodetach', '-outform', 'DER', '-in', file,
      '-signer', path.join(dir, 'sign.crt'), '-inkey', path.join(dir, 'sign.key'), '-out', out]);
    return out;
  };

  /** The operator's confirmation through the API (to-be-signed, openssl cms, upload); P1 records the identity step first. */
  kit.confirm = (dir, number, identity) => {
    let r;
    if (identity) {
      r = kit.asOperator(dir, 'POST', `/api/v1/operator/applications/${number}/identity`,
        JSON.stringify({ confirmed: true, documents: ['identity card'] }));
      assert.equal(r.status, 200, r.body.toString());
    }
    r = kit.asOperator(dir, 'GET', `/api/v1/operator/applications/${number}/to-be-signed`);
    assert.equal(r.status, 200, r.body.toString());
    const tbs = path.join(work, `${number}.tbs`);
    fs.writeFileSync(tbs, r.body);
    r = kit.asOperator(dir, 'POST', `/api/v1/operator/applications/${number}/confirmation`,
      fs.readFileSync(kit.signAsOperator(dir, tbs)), 'application/pkcs7-mime');
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.json().status, 'completed', r.body.toString());
  };

  /** The first centre of the centres' list. */
  kit.firstCentre = () => kit.curl(`${kit.pub}/api/v1/centres`).json().regions[0].localities[0].centres[0].id;

  /** An operator at `centre` with an EC key pair, credentials in `work`/operator. */
  kit.addOperator = (centre) => {
    const dir = path.join(work, 'operator');
    kit.nca('operator', 'add', '--iin', OPERATOR_IIN, '--surname', 'Сейітқали', '--name', 'Оператор', '--centre', centre,
      '--out', dir, '--key-algorithm', 'ec-p256');
    return dir;
  };

  /** Headless Chromium, closed by `finish`. */
  kit.launch = async () => {
    kit.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    return kit.browser;
  };

  /** A full-page screenshot into the artifacts. */
  kit.shot = async (page, name) => {
    await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  };

  /** Closes the browser and stops the server; removes the temporary directory unless E2E_KEEP=1. */
  kit.finish = async () => {
    await kit.browser?.close().catch(() => {});
    kit.server?.kill();
    if (process.env.E2E_KEEP !== '1') fs.rmSync(work, { recursive: true, force: true });
    else console.log(`kept ${work}`);
  };

  return kit;
}

/** Console errors and uncaught exceptions of a page, except the statuses `allowed(url, text)` expects. */
export function watch(page, errors, allowed = () => false) {
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = m.location()?.url || '';
    if (allowed(url, m.text())) return;
    errors.push(`console: ${m.text()} at ${url}`);
  });
}
