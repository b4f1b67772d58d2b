// The status page: the application's steps against the regulation's deadlines, its refusal,
// its certificates and the PKCS#12 file made from the keys this browser keeps, then the survey.

import {
  $, t, el, show, fieldError, api, errorText, iinProblem, markLanguage, when, duration, downloadLink,
  stepName, stateName, refusalText, tOr,
} from './common.js';
import { unpem, certificateSpki, equal } from './der.js';
import * as keys from './keys.js';
import { pkcs12 } from './pkcs12.js';

markLanguage();

let current = null; // {number, iin, view, pem}

function error(message) {
  const box = $('status-error');
  box.textContent = message || '';
  show(box, Boolean(message));
}

function timeline(view) {
  const now = Date.now();
  const rows = view.steps.map((s) => {
    const start = Date.parse(s.started_at);
    const end = s.finished_at ? Date.parse(s.finished_at) : null;
    const took = ((end ?? now) - start) / 1000;
    const over = s.deadline_seconds != null && took > s.deadline_seconds;
    const tookText = end === null ? t('status.in_progress', { time: duration(took) }) : duration(took);
    const verdict = s.deadline_seconds == null ? '' : over ? t('status.over') : t('status.within');
    return el('tr', { class: over ? 'over' : end === null ? 'open' : 'done' },
      el('th', { scope: 'row' }, stepName(s.step)),
      el('td', {}, tOr(`actor.${s.actor}`, s.actor)),
      el('td', {}, el('time', { datetime: s.started_at }, when(s.started_at))),
      el('td', {}, s.finished_at ? el('time', { datetime: s.finished_at }, when(s.finished_at)) : '—'),
      el('td', {}, tookText),
      el('td', {}, s.deadline_seconds == null ? '—' : `${duration(s.deadline_seconds)} ${verdict ? `(${verdict})` : ''}`));
  });
  $('timeline').replaceChildren(...rows);
}

async function certificates(view) {
  const r = await api(`/api/v1/applications/${encodeURIComponent(view.number)}/certificates?iin=${encodeURIComponent(current.iin)}`);
  if (!r.ok) return;
  current.pem = r.body;
  const items = (view.certificates || []).map((serial, i) => el('li', {},
    `${i === 0 ? 'AUTH' : 'SIGN'}: `,
    el('a', { href: `/api/v1/certificates/${serial}` }, serial)));
  $('cert-list').replaceChildren(...items);
  downloadLink($('pem-download'), r.body, `${view.number}.pem`, 'application/pem-certificate-chain');
  const here = await keys.has(view.number);
  show($('p12-here'), here);
  show($('p12-absent'), !here);
  show($('certificates'));
}

async function survey(view) {
  if (view.status !== 'completed' && view.status !== 'refused') { show($('survey'), false); return; }
  const r = await api(`/api/v1/applications/${encodeURIComponent(view.number)}/survey?iin=${encodeURIComponent(current.iin)}`);
  const answered = r.ok && r.body?.answered;
  show($('survey-form'), !answered);
  show($('survey-thanks'), Boolean(answered));
  show($('survey'));
}

async function load(number, iin) {
  error('');
  const r = await api(`/api/v1/applications/${encodeURIComponent(number)}?iin=${encodeURIComponent(iin)}`);
  if (!r.ok) {
    show($('status-view'), false);
    error(r.status === 404 ? t('status.not_found') : errorText(r));
    return;
  }
  const view = r.body;
  current = { number: view.number, iin, view };
  try { sessionStorage.setItem(`nca-iin:${view.number}`, iin); } catch { /* private mode */ }
  $('view-number').textContent = view.number;
  $('status-text').textContent = stateName(view.status);
  $('status-text').dataset.status = view.status;
  if (view.refusal) {
    $('refusal-reason').textContent = refusalText(view.refusal);
    $('refusal-detail').textContent = view.refusal.message;
  }
  show($('refusal'), Boolean(view.refusal));
  timeline(view);
  show($('certificates'), false);
  show($('p12-ready'), false);
  show($('status-view'));
  if (view.status === 'completed' && view.certificates) await certificates(view);
  await survey(view);
  $('status-view').focus();
}

$('status-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const number = $('number').value.trim();
  const iin = $('iin').value.trim();
  fieldError($('number'), number ? null : t('check.required'));
  fieldError($('iin'), iinProblem(iin) ? t(iinProblem(iin)) : null);
  if (!number) { $('number').focus(); return; }
  if (iinProblem(iin)) { $('iin').focus(); return; }
  const u = new URL(location.href);
  u.searchParams.set('number', number);
  history.replaceState(null, '', u.pathname + u.search);
  load(number, iin);
});

$('p12-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const box = $('p12-error');
  show(box, false);
  const password = $('p12-password').value;
  let held;
  try {
    held = await keys.open(current.number, password);
  } catch {
    box.textContent = t('certs.wrong_password');
    show(box);
    $('p12-password').focus();
    return;
  }
  try {
    const certs = unpem(current.pem, 'CERTIFICATE');
    const entries = [];
    for (const which of ['auth', 'sign']) {
      const cert = certs.find((c) => equal(certificateSpki(c), held[which].spki));
      if (!cert) throw new Error(t('certs.no_match'));
      entries.push({ name: `${which.toUpperCase()} ${current.number}`, pkcs8: held[which].pkcs8, certificate: cert });
    }
    const chain = certs.filter((c) => !entries.some((e) => e.certificate === c));
    const der = await pkcs12(entries, chain, password);
    downloadLink($('p12-download'), der, `${current.number}.p12`, 'application/x-pkcs12');
    show($('p12-ready'));
    $('p12-download').focus();
  } catch (e) {
    box.textContent = t('error.browser', { message: e?.message || String(e) });
    show(box);
  }
});

$('survey-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData($('survey-form'));
  const box = $('survey-error');
  if (!f.get('process') || !f.get('information')) {
    box.textContent = t('survey.both');
    show(box);
    return;
  }
  show(box, false);
  const r = await api(`/api/v1/applications/${encodeURIComponent(current.number)}/survey?iin=${encodeURIComponent(current.iin)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ process: f.get('process'), information: f.get('information') }),
  });
  if (r.ok) {
    show($('survey-form'), false);
    show($('survey-thanks'));
    $('survey-thanks').focus?.();
  } else {
    box.textContent = errorText(r);
    show(box);
  }
});

const params = new URLSearchParams(location.search);
const number = params.get('number');
if (number) {
  $('number').value = number;
  let iin = null;
  try { iin = sessionStorage.getItem(`nca-iin:${number}`); } catch { /* private mode */ }
  if (iin) { $('iin').value = iin; load(number, iin); } else $('iin').focus();
}
