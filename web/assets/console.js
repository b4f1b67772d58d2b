// The operator's console: the centre's queue, an application's details, the identity step
// (condition 2) with the documents seen and the printable receipt, and the confirmation: the
// to-be-signed bytes downloaded, signed with the operator's own tool, uploaded as CMS.

import { $, t, el, show, api, errorText, lang, markLanguage, when, downloadLink, stateName, refusalText, tOr } from './common.js';

markLanguage();

let me = null;
let current = null; // the desk view

function error(message) {
  const box = $('console-error');
  box.textContent = message || '';
  show(box, Boolean(message));
}

function result(message) {
  $('detail-result').textContent = message || '';
}

function fullName(a) {
  return [a?.surname, a?.name, a?.patronymic].filter(Boolean).join(' ');
}

async function whoami() {
  const r = await api('/api/v1/operator/me');
  if (!r.ok) { error(errorText(r)); return; }
  me = r.body;
  $('whoami').textContent = t('console.signed_in', { name: `${me.surname} ${me.name}`, iin: me.iin, centre: me.centre });
}

async function queue() {
  const status = $('queue-status').value;
  const r = await api(`/api/v1/operator/applications?status=${encodeURIComponent(status)}`);
  if (!r.ok) { error(errorText(r)); return; }
  const rows = r.body.applications.map((a) => el('tr', {},
    el('td', { class: 'number' }, a.number),
    el('td', {}, tOr(`service.${a.service}`, a.service)),
    el('td', {}, stateName(a.status)),
    el('td', {}, when(a.steps[0]?.started_at)),
    el('td', {}, Object.assign(el('button', { type: 'button', 'data-number': a.number }, t('console.open')), {
      onclick: () => open(a.number),
    }))));
  $('queue').replaceChildren(...rows);
  show($('queue-empty'), rows.length === 0);
}

function receipt(d) {
  const a = d;
  if (!a.receipt) { show($('receipt'), false); return; }
  const identity = a.steps.find((s) => s.step === 'identity');
  const documents = (identity?.outcome || '').split('documents: ')[1] || '';
  $('r-number').textContent = a.receipt;
  $('r-application').textContent = a.number;
  $('r-name').textContent = fullName(d.applicant);
  $('r-iin').textContent = d.applicant?.iin || '';
  $('r-documents').textContent = documents;
  $('r-centre').textContent = d.centre ? `${d.centre.names?.[lang] || d.centre.names?.en || d.centre.id}, ${d.centre.address}` : a.registration_centre;
  $('r-operator').textContent = me ? `${me.surname} ${me.name} (${me.iin})` : '';
  $('r-date').textContent = when(identity?.finished_at);
  show($('receipt'));
}

async function tbs(number) {
  const r = await api(`/api/v1/operator/applications/${encodeURIComponent(number)}/to-be-signed`);
  if (!r.ok) { result(errorText(r)); return; }
  downloadLink($('tbs-download'), r.body, `${number}.txt`, 'text/plain;charset=utf-8');
}

function render(d) {
  current = d;
  const a = d;
  $('d-number').textContent = a.number;
  $('d-status').textContent = stateName(a.status);
  $('d-status').dataset.status = a.status;
  $('d-iin').textContent = d.applicant?.iin || '';
  $('d-name').textContent = fullName(d.applicant);
  $('d-email').textContent = d.applicant?.email || '';
  $('d-storage').textContent = tOr(`storage.${d.storage}`, d.storage);
  $('d-created').textContent = when(d.created_at);
  show($('d-refusal'), Boolean(a.refusal));
  if (a.refusal) $('d-refusal-reason').textContent = `${refusalText(a.refusal)} — ${a.refusal.message}`;
  show($('identity-form'), a.status === 'awaiting_documents');
  show($('confirm-form'), a.status === 'awaiting_confirmation');
  receipt(d);
  if (a.status === 'awaiting_confirmation') tbs(a.number);
  show($('detail'));
}

async function open(number) {
  error('');
  result('');
  const r = await api(`/api/v1/operator/applications/${encodeURIComponent(number)}`);
  if (!r.ok) { error(r.status === 404 ? t('status.not_found') : errorText(r)); return; }
  $('identity-form').reset();
  $('confirm-form').reset();
  render(r.body);
  $('detail').focus();
}

$('find-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const n = $('find-number').value.trim();
  if (n) open(n);
});

$('queue-status').addEventListener('change', queue);

$('identity-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const documents = [...document.querySelectorAll('input[name="documents"]:checked')].map((c) => c.value);
  const other = $('doc-other').value.trim();
  if (other) documents.push(other);
  const confirmed = document.querySelector('input[name="confirmed"]:checked')?.value === 'yes';
  if (confirmed && documents.length === 0) { result(t('console.need_documents')); return; }
  const body = { confirmed, documents };
  if (!confirmed) body.reason = $('id-reason').value.trim() || undefined;
  const number = current.number;
  const r = await api(`/api/v1/operator/applications/${encodeURIComponent(number)}/identity`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  if (r.status === 200 || r.status === 422) {
    await open(number);
    result(stateName(r.body.status));
    queue();
  } else {
    result(errorText(r));
  }
});

$('print-receipt').addEventListener('click', () => window.print());

$('confirm-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const file = $('cms-file').files[0];
  if (!file) { result(t('console.need_file')); $('cms-file').focus(); return; }
  const number = current.number;
  $('confirm-button').disabled = true;
  try {
    const r = await api(`/api/v1/operator/applications/${encodeURIComponent(number)}/confirmation`, {
      method: 'POST', headers: { 'content-type': 'application/pkcs7-mime' }, body: await file.arrayBuffer(),
    });
    if (r.status === 200 || r.status === 422) {
      await open(number);
      result(r.body.refusal ? `${stateName(r.body.status)}: ${refusalText(r.body.refusal)}` : stateName(r.body.status));
      queue();
    } else {
      result(errorText(r));
    }
  } finally {
    $('confirm-button').disabled = false;
  }
});

await whoami();
await queue();
