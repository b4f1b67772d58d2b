// The personal cabinet: sign-in with the citizen's PKCS#12 file (opened here; the password and
// the private keys never leave this page), their certificates and applications, reissue (P2)
// and revocation (P3) signed here with the SIGN key as CMS SignedData and filed through the
// applications API like any other client.

import { $, t, tOr, el, show, fieldError, api, errorText, emailOk, lang, markLanguage, when, stateName, downloadLink } from './common.js';
import { readPkcs12 } from './p12read.js';
import { signer, certifies, signedData } from './sign.js';
import { certificateParts, unpem, certificateSpki, equal } from './der.js';
import { newKeyPair, certificationRequest, keep, list as keptKeys, open as openKept } from './keys.js';

markLanguage();
// Signed requests carry the service's time, whatever this computer's clock says.
const clockOffset = Number(document.body.dataset.serverTime || 0) * 1000 - Date.now();
const serverNow = () => Math.floor((Date.now() + clockOffset) / 1000);

/** What the opened key file gave: {auth: {signer, cert}, sign?: {signer, cert}}; page memory only. */
let held = null;
let profile = null;
let certificates = [];
let centres = { regions: [] };

// keyUsage's first octet: digitalSignature 0x80, nonRepudiation 0x40.
const isSign = (cert) => (certificateParts(cert).keyUsage ?? 0) & 0x40;

/** The AUTH and SIGN pairs of a PKCS#12 file: each key with the certificate it certifies. */
async function pairsOf(file) {
  const out = {};
  for (const k of file.keys) {
    let s;
    try {
      s = await signer(k.pkcs8);
    } catch {
      continue;
    }
    for (const c of file.certificates) {
      if (await certifies(c.der, s)) {
        out[isSign(c.der) ? 'sign' : 'auth'] = { signer: s, cert: c.der };
        break;
      }
    }
  }
  return out;
}

function signinError(message) {
  $('signin-error').textContent = message || '';
  show($('signin-error'), Boolean(message));
}

function actionError(message) {
  $('action-error').textContent = message || '';
  show($('action-error'), Boolean(message));
}

const b64 = (bytes) => { let s = ''; for (const x of bytes) s += String.fromCharCode(x); return btoa(s); };

/** Signs a fresh challenge with the AUTH key and opens the session; false (and says why) if refused. */
async function signInWith(pairs) {
  if (!pairs.auth) {
    signinError(t('cabinet.error.no_auth'));
    return false;
  }
  $('signin-progress').textContent = t('cabinet.signing_in');
  const c = await api('/api/v1/cabinet/challenge', { method: 'POST' });
  if (c.status !== 201) { signinError(errorText(c)); return false; }
  const signature = await pairs.auth.signer.sign(new TextEncoder().encode(c.body.to_sign));
  const r = await api('/api/v1/cabinet/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ challenge: c.body.challenge, certificate: b64(pairs.auth.cert), signature: b64(signature) }),
  });
  if (r.status !== 201) { signinError(errorText(r)); return false; }
  held = pairs;
  $('revoke-result').replaceChildren();
  await enter();
  return true;
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  signinError('');
  const file = $('key-file').files[0];
  const password = $('key-password').value;
  fieldError($('key-file'), file ? null : t('cabinet.check.file'));
  fieldError($('key-password'), password ? null : t('check.required'));
  if (!file) { $('key-file').focus(); return; }
  if (!password) { $('key-password').focus(); return; }
  $('signin-button').disabled = true;
  $('signin-progress').textContent = t('cabinet.opening');
  try {
    let opened;
    try {
      opened = await readPkcs12(new Uint8Array(await file.arrayBuffer()), password);
    } catch (e) {
      const code = e?.code || 'format';
      signinError(t(`cabinet.error.${code}`));
      (code === 'password' ? $('key-password') : $('key-file')).focus();
      return;
    }
    if (await signInWith(await pairsOf(opened))) $('key-password').value = '';
  } catch (e) {
    signinError(t('error.browser', { message: e?.message || String(e) }));
  } finally {
    $('signin-progress').textContent = '';
    $('signin-button').disabled = false;
  }
});

// Keys the portal kept in this browser (IndexedDB, under the form's password), with their
// certificates once issued.
async function showKept() {
  const kept = await keptKeys();
  $('kept').replaceChildren(...kept.map((k) => el('option', { value: k.number, 'data-iin': k.iin }, `${k.number} (${t('field.iin')} ${k.iin})`)));
  show($('kept-form'), kept.length > 0);
}

$('kept-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  signinError('');
  const option = $('kept').selectedOptions[0];
  if (!option) return;
  $('kept-button').disabled = true;
  try {
    let keys;
    try {
      keys = await openKept(option.value, $('kept-password').value);
    } catch {
      signinError(t('cabinet.error.password'));
      $('kept-password').focus();
      return;
    }
    const r = await api(`/api/v1/applications/${encodeURIComponent(option.value)}/certificates?iin=${encodeURIComponent(option.dataset.iin)}`);
    if (!r.ok) { signinError(t('cabinet.error.not_issued')); return; }
    const certs = unpem(r.body, 'CERTIFICATE');
    const pairs = {};
    for (const which of ['auth', 'sign']) {
      const cert = certs.find((c) => equal(certificateSpki(c), keys[which].spki));
      if (cert) pairs[which] = { signer: await signer(keys[which].pkcs8), cert };
    }
    if (await signInWith(pairs)) $('kept-password').value = '';
  } catch (e) {
    signinError(t('error.browser', { message: e?.message || String(e) }));
  } finally {
    $('signin-progress').textContent = '';
    $('kept-button').disabled = false;
  }
});
showKept();

function statusText(c) {
  if (c.status === 'revoked') {
    return t('cabinet.status.revoked', { reason: tOr(`reason.${c.revocation.reason}`, c.revocation.reason), at: when(c.revocation.revoked_at) });
  }
  return t(`cabinet.status.${c.status}`);
}

async function download(a, serial) {
  const r = await api(`/api/v1/cabinet/certificates/${encodeURIComponent(serial)}`);
  if (r.ok) downloadLink(a, r.body, `${serial}.pem`, 'application/pem-certificate-chain');
}

async function loadLists() {
  const [c, a] = await Promise.all([api('/api/v1/cabinet/certificates'), api('/api/v1/cabinet/applications')]);
  if (c.status === 401 || a.status === 401) return false;
  certificates = c.body?.certificates || [];
  $('certs').replaceChildren(...certificates.map((x) => {
    const link = el('a', { href: '#', 'data-serial': x.serial }, t('cabinet.download_pem'));
    download(link, x.serial);
    return el('tr', { 'data-serial': x.serial, 'data-status': x.status },
      el('td', {}, x.kind.toUpperCase()),
      el('td', { class: 'number' }, x.serial),
      el('td', {}, `${when(x.not_before)} — ${when(x.not_after)}`),
      el('td', {}, statusText(x)),
      el('td', {}, link));
  }));
  const apps = a.body?.applications || [];
  $('apps').replaceChildren(...apps.map((x) => el('li', {},
    el('a', { href: `/status?lang=${lang}&number=${encodeURIComponent(x.number)}` }, x.number),
    ` — ${tOr(`cabinet.service.${x.service}`, x.service)}, ${stateName(x.status)}, ${when(x.created_at)}`)));
  return true;
}

/** Shows the cabinet of the signed-in holder, or the sign-in form when there is no session. */
async function enter() {
  const s = await api('/api/v1/cabinet/session');
  if (s.status !== 200) { leave(errorText(s)); return; }
  profile = s.body;
  try { sessionStorage.setItem('nca-cabinet-iin', profile.holder.iin); } catch { /* private mode */ }
  $('holder-line').textContent = t('cabinet.signed_in_as', { iin: profile.holder.iin, until: when(profile.holder.expires_at) });
  if (!(await loadLists())) { leave(t('cabinet.signed_out')); return; }
  show($('signin'), false);
  show($('cabinet'));
}

function leave(message) {
  held = null;
  show($('cabinet'), false);
  show($('signin'));
  if (message) signinError(message);
}

$('sign-out').addEventListener('click', async () => {
  await api('/api/v1/cabinet/session', { method: 'DELETE' });
  held = null;
  profile = null;
  show($('reissue'), false);
  show($('revoke'), false);
  show($('cabinet'), false);
  show($('signin'));
  $('key-file').focus();
});

// ---- P3: revoke.
$('revoke-open').addEventListener('click', () => {
  actionError('');
  if (!held?.sign) { actionError(t('cabinet.error.no_sign')); return; }
  show($('reissue'), false);
  const inForce = certificates.filter((c) => c.status === 'valid');
  $('revoke-list').replaceChildren(...inForce.map((c, i) => el('div', { class: 'field check' },
    el('input', { type: 'checkbox', id: `revoke-${i}`, value: c.serial, checked: true }),
    el('label', { for: `revoke-${i}` }, `${c.kind.toUpperCase()} ${c.serial}`))));
  $('revoke-result').textContent = '';
  show($('revoke'));
  $('revoke').focus();
});

/** Signs a request's JSON with the SIGN key and files it: the application view, or throws. */
async function fileSigned(request) {
  const content = new TextEncoder().encode(JSON.stringify(request));
  const cms = await signedData(content, held.sign.cert, held.sign.signer, serverNow());
  return api('/api/v1/applications', {
    method: 'POST',
    headers: { 'content-type': 'application/pkcs7-mime' },
    body: cms,
  });
}

$('revoke-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  actionError('');
  const serials = [...$('revoke-list').querySelectorAll('input:checked')].map((i) => i.value);
  if (!serials.length) { actionError(t('cabinet.check.choose_certificate')); return; }
  $('revoke-submit').disabled = true;
  try {
    const r = await fileSigned({ service: 'revoke', applicant: { iin: profile.holder.iin }, certificates: serials, reason: $('reason').value });
    const box = $('revoke-result');
    if (r.status === 201 && r.body?.status === 'completed') {
      box.replaceChildren(el('p', {}, t('cabinet.revoked', { number: r.body.number })),
        el('ul', {}, ...serials.map((s) => el('li', { class: 'number' }, s))));
    } else if (r.body?.refusal) {
      box.replaceChildren(el('p', {}, tOr(`refusal.${r.body.refusal.code}`, r.body.refusal.code)));
    } else {
      box.replaceChildren(el('p', {}, errorText(r)));
    }
    box.focus();
    // The lists as they now stand; a session whose AUTH certificate was revoked has ended (the
    // result stays shown above the sign-in form).
    if (!(await loadLists())) {
      leave(t('cabinet.signed_out_revoked'));
      show($('revoke'), false);
    }
  } catch (e) {
    actionError(t('error.browser', { message: e?.message || String(e) }));
  } finally {
    $('revoke-submit').disabled = false;
  }
});

// ---- P2: reissue.
const names = (x) => x.names?.[lang] || x.names?.en || x.id;
function fill(select, items, value) {
  select.replaceChildren(el('option', { value: '' }, t('form.choose')), ...items.map((it) => el('option', { value: it.id }, names(it))));
  if (value && items.some((it) => it.id === value)) select.value = value;
}
const region = () => centres.regions.find((r) => r.id === $('region').value);
const locality = () => region()?.localities.find((l) => l.id === $('locality').value);
$('region').addEventListener('change', () => { fill($('locality'), region()?.localities || []); fill($('centre'), []); });
$('locality').addEventListener('change', () => fill($('centre'), locality()?.centres || []));

$('reissue-open').addEventListener('click', async () => {
  actionError('');
  if (!held?.sign) { actionError(t('cabinet.error.no_sign')); return; }
  show($('revoke'), false);
  const r = await api('/api/v1/centres');
  if (r.ok) centres = r.body;
  const a = profile.applicant || {};
  $('reissue-who').textContent = [a.surname, a.name, a.patronymic].filter(Boolean).join(' ') + ` (${t('field.iin')} ${profile.holder.iin})`;
  $('email').value = a.email || '';
  // The centre decides region and locality when they were not recorded.
  const centreId = profile.registration_centre;
  let where = { region: a.region, locality: a.locality };
  for (const rg of centres.regions) for (const l of rg.localities) for (const c of l.centres) {
    if (c.id === centreId && !where.region) where = { region: rg.id, locality: l.id };
  }
  fill($('region'), centres.regions, where.region);
  fill($('locality'), region()?.localities || [], where.locality);
  fill($('centre'), locality()?.centres || [], centreId);
  show($('reissue-result'), false);
  show($('reissue-form'));
  show($('reissue'));
  $('reissue').focus();
});

$('reissue-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  actionError('');
  const checks = {
    email: (v) => (emailOk(v.trim()) ? null : t('check.email')),
    region: (v) => (v ? null : t('check.choose')),
    locality: (v) => (v ? null : t('check.choose')),
    centre: (v) => (v ? null : t('check.choose')),
    'new-password': (v) => (v.length >= 8 ? null : t('check.password')),
    'new-password2': (v) => (v === $('new-password').value ? null : t('check.password2')),
  };
  const wrong = Object.keys(checks).filter((id) => { const m = checks[id]($(id).value); fieldError($(id), m); return m; });
  if (wrong.length) { $(wrong[0]).focus(); return; }
  $('reissue-submit').disabled = true;
  try {
    const iin = profile.holder.iin;
    $('reissue-progress').textContent = t('progress.keys');
    const pairs = {};
    for (const which of ['auth', 'sign']) {
      const pair = await newKeyPair();
      const req = await certificationRequest(pair, `IIN${iin}`);
      pairs[which] = { pair, spki: req.spki, pem: req.pem };
    }
    const a = profile.applicant || {};
    const request = {
      service: 'reissue',
      applicant: {
        iin, surname: a.surname, name: a.name, patronymic: a.patronymic || null,
        email: $('email').value.trim(), region: $('region').value, locality: $('locality').value,
      },
      registration_centre: $('centre').value,
      storage: 'file',
      requests: { auth: pairs.auth.pem, sign: pairs.sign.pem },
    };
    if (profile.organization) request.organization = profile.organization;
    $('reissue-progress').textContent = t('progress.send');
    const r = await fileSigned(request);
    if (r.status === 201) {
      await keep(r.body.number, iin, $('new-password').value, pairs);
      try { sessionStorage.setItem(`nca-iin:${r.body.number}`, iin); } catch { /* private mode */ }
      $('new-password').value = '';
      $('new-password2').value = '';
      $('order-number').textContent = r.body.number;
      $('reissue-status').href = `/status?lang=${lang}&number=${encodeURIComponent(r.body.number)}`;
      show($('reissue-form'), false);
      show($('reissue-result'));
      $('reissue').focus();
      await loadLists();
    } else if (r.body?.refusal) {
      actionError(tOr(`refusal.${r.body.refusal.code}`, r.body.refusal.code));
    } else {
      actionError(errorText(r));
    }
  } catch (e) {
    actionError(t('error.browser', { message: e?.message || String(e) }));
  } finally {
    $('reissue-progress').textContent = '';
    $('reissue-submit').disabled = false;
  }
});

// The keys live in this page's memory only, so a new page starts at the sign-in form even when
// an earlier page's session is still open: signing needs the key file opened again anyway.
