// The application form (regulation appendix 2): checks, dependent lists of centres, keys and
// requests made in the browser for storage "file", the proof of work, submission.

import {
  $, t, el, show, fieldError, api, errorText, iinProblem, emailOk, lang, markLanguage, refusalText, checkDigitOk,
} from './common.js';
import { newKeyPair, certificationRequest, keep } from './keys.js';

const form = $('application-form');
const powBits = Number(document.body.dataset.powBits || 0);
// The stamp carries the service's time, so a wrong clock on the citizen's computer does not matter.
const clockOffset = Number(document.body.dataset.serverTime || 0) * 1000 - Date.now();
let centres = { regions: [] };

markLanguage();

function names(x) {
  return x.names?.[lang] || x.names?.en || x.id;
}

function fill(select, items) {
  select.replaceChildren(el('option', { value: '' }, t('form.choose')));
  for (const it of items) select.append(el('option', { value: it.id }, names(it)));
  select.disabled = items.length === 0;
}

function region() {
  return centres.regions.find((r) => r.id === $('region').value);
}

function locality() {
  return region()?.localities.find((l) => l.id === $('locality').value);
}

function centre() {
  return locality()?.centres.find((c) => c.id === $('centre').value);
}

async function loadCentres() {
  const r = await api('/api/v1/centres');
  if (!r.ok) {
    formError(errorText(r));
    return;
  }
  centres = r.body;
  fill($('region'), centres.regions);
}

$('region').addEventListener('change', () => {
  fill($('locality'), region()?.localities || []);
  fill($('centre'), []);
  $('centre-address').textContent = '';
});
$('locality').addEventListener('change', () => {
  fill($('centre'), locality()?.centres || []);
  $('centre-address').textContent = '';
});
$('centre').addEventListener('change', () => {
  const c = centre();
  $('centre-address').textContent = c ? t('form.address', { address: c.address }) : '';
});

function storageChanged() {
  const s = $('storage').value;
  show($('file-keys'), s === 'file');
  show($('external-keys'), s !== 'file');
  $('storage-help').textContent = t(`storage.${s}_summary`);
  $('external-help').textContent = s === 'token' ? t('storage.token_help') : t('storage.id_card_help');
}
$('storage').addEventListener('change', storageChanged);
storageChanged();

// A legal entity's employee names the entity and their role in it (the legal profiles).
const employee = () => $('applicant-type').value === 'employee';
function applicantTypeChanged() {
  show($('organisation-fields'), employee());
  for (const id of ['bin', 'organisation', 'role']) $(id).required = employee();
}
$('applicant-type').addEventListener('change', applicantTypeChanged);
applicantTypeChanged();

function binProblem(v) {
  if (!/^\d{12}$/.test(v)) return 'check.bin_format';
  return checkDigitOk(v) ? null : 'check.bin_digit';
}

/** Field checks: each returns a message or null. */
const checks = {
  iin: (v) => (iinProblem(v) ? t(iinProblem(v)) : null),
  surname: (v) => (v.trim() ? null : t('check.required')),
  name: (v) => (v.trim() ? null : t('check.required')),
  email: (v) => (emailOk(v.trim()) ? null : t('check.email')),
  region: (v) => (v ? null : t('check.choose')),
  locality: (v) => (v ? null : t('check.choose')),
  centre: (v) => (v ? null : t('check.choose')),
  password: (v) => ($('storage').value !== 'file' || v.length >= 8 ? null : t('check.password')),
  password2: (v) => ($('storage').value !== 'file' || v === $('password').value ? null : t('check.password2')),
  'auth-csr': (v) => ($('storage').value === 'file' || v.includes('CERTIFICATE REQUEST') ? null : t('check.csr')),
  'sign-csr': (v) => ($('storage').value === 'file' || v.includes('CERTIFICATE REQUEST') ? null : t('check.csr')),
  bin: (v) => (!employee() || !binProblem(v.trim()) ? null : t(binProblem(v.trim()))),
  organisation: (v) => (!employee() || v.trim() ? null : t('check.required')),
  role: (v) => (!employee() || v ? null : t('check.choose')),
};

function check(id) {
  const input = $(id);
  const problem = checks[id](input.value);
  fieldError(input, problem);
  return problem;
}

for (const id of Object.keys(checks)) {
  $(id).addEventListener('blur', () => { if ($(id).value) check(id); });
}

function formError(message) {
  const box = $('form-error');
  box.textContent = message || '';
  show(box, Boolean(message));
}

function progress(message) {
  $('progress').textContent = message || '';
}

/** The proof of work for this IIN, or null when the service takes none. */
function proofOfWork(iin) {
  if (!powBits) return Promise.resolve(null);
  const random = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
  const now = Math.floor((Date.now() + clockOffset) / 1000);
  const prefix = `nca-pow1:${powBits}:${now}:${iin}:${random}`;
  return new Promise((resolve, reject) => {
    const w = new Worker('/assets/pow-worker.js');
    w.onmessage = (ev) => { w.terminate(); resolve(ev.data.stamp); };
    w.onerror = (e) => { w.terminate(); reject(e); };
    w.postMessage({ prefix, bits: powBits });
  });
}

function statusHref(number) {
  return `/status?lang=${lang}&number=${encodeURIComponent(number)}`;
}

function showRefusal(app) {
  $('refused-number').textContent = app.number;
  $('refusal-reason').textContent = refusalText(app.refusal);
  $('refusal-detail').textContent = app.refusal.message;
  $('refused-status-link').href = statusHref(app.number);
  show($('refused'));
  $('refused').focus();
}

function showResult(app, storage) {
  const c = centre();
  $('order-number').textContent = app.number;
  $('result-centre').textContent = c ? names(c) : app.registration_centre;
  $('result-address').textContent = c?.address || '';
  $('status-link').href = statusHref(app.number);
  show($('result-keys'), storage === 'file');
  show($('result'));
  $('result').focus();
}

form.addEventListener('reset', () => {
  for (const id of Object.keys(checks)) fieldError($(id), null);
  formError('');
  setTimeout(() => { fill($('locality'), []); fill($('centre'), []); storageChanged(); applicantTypeChanged(); }, 0);
});

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  formError('');
  show($('result'), false);
  show($('refused'), false);
  const problems = Object.keys(checks).filter((id) => check(id));
  if (problems.length) {
    formError(t('check.summary', { n: problems.length }));
    $(problems[0]).focus();
    return;
  }
  const button = $('submit');
  button.disabled = true;
  try {
    const iin = $('iin').value.trim();
    const storage = $('storage').value;
    let requests;
    let pairs;
    if (storage === 'file') {
      progress(t('progress.keys'));
      pairs = {};
      for (const which of ['auth', 'sign']) {
        const pair = await newKeyPair();
        const req = await certificationRequest(pair, `IIN${iin}`);
        pairs[which] = { pair, spki: req.spki, pem: req.pem };
      }
      requests = { auth: pairs.auth.pem, sign: pairs.sign.pem };
    } else {
      requests = { auth: $('auth-csr').value.trim(), sign: $('sign-csr').value.trim() };
    }
    progress(t('progress.pow'));
    const stamp = await proofOfWork(iin);
    progress(t('progress.send'));
    const body = {
      service: 'issue',
      applicant: {
        iin,
        surname: $('surname').value.trim(),
        name: $('name').value.trim(),
        patronymic: $('patronymic').value.trim() || null,
        email: $('email').value.trim(),
        region: $('region').value,
        locality: $('locality').value,
      },
      registration_centre: $('centre').value,
      storage,
      requests,
    };
    if (employee()) {
      body.organization = { bin: $('bin').value.trim(), name: $('organisation').value.trim(), role: $('role').value };
    }
    const headers = { 'content-type': 'application/json' };
    if (stamp) headers['x-proof-of-work'] = stamp;
    const r = await api('/api/v1/applications', { method: 'POST', headers, body: JSON.stringify(body) });
    progress('');
    if (r.status === 201 || r.status === 422) {
      try { sessionStorage.setItem(`nca-iin:${r.body.number}`, iin); } catch { /* private mode */ }
    }
    if (r.status === 201) {
      if (pairs) await keep(r.body.number, iin, $('password').value, pairs);
      $('password').value = '';
      $('password2').value = '';
      showResult(r.body, storage);
    } else if (r.status === 422 && r.body?.refusal) {
      showRefusal(r.body);
    } else if (r.status === 429) {
      formError(t('error.rate_limited', { s: r.headers.get('retry-after') || '60' }));
    } else {
      formError(errorText(r));
    }
  } catch (e) {
    progress('');
    formError(t('error.browser', { message: e?.message || String(e) }));
  } finally {
    button.disabled = false;
  }
});

loadCentres();
