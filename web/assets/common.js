// Shared by the pages: texts of the page's language, small DOM helpers, the API, IIN checks.

const texts = JSON.parse(document.getElementById('i18n')?.textContent || '{}');
export const lang = document.body.dataset.lang || 'kk';

/** The text for `key` in the page's language, with {name} placeholders filled. */
export function t(key, vars = {}) {
  const s = texts[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

/** A text when there is one for `key`, else `fallback`. */
export function tOr(key, fallback) {
  return key in texts ? texts[key] : fallback;
}

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function show(node, on = true) {
  node.hidden = !on;
}

/** Marks a field invalid with a message (or clears it), the way screen readers hear it. */
export function fieldError(input, message) {
  const box = $(`${input.id}-error`);
  if (message) {
    input.setAttribute('aria-invalid', 'true');
    if (box) { box.textContent = message; box.hidden = false; }
  } else {
    input.removeAttribute('aria-invalid');
    if (box) { box.textContent = ''; box.hidden = true; }
  }
}

/** fetch, answering {status, body} with the body parsed as JSON when it is JSON. */
export async function api(path, options = {}) {
  // The page's language, so refusals and the applicant's letters come in it.
  const headers = { 'accept-language': lang, ...(options.headers || {}) };
  const resp = await fetch(path, { credentials: 'same-origin', ...options, headers });
  const ctype = resp.headers.get('content-type') || '';
  let body;
  if (ctype.includes('json')) body = await resp.json().catch(() => null);
  else body = await resp.text();
  return { status: resp.status, ok: resp.ok, body, headers: resp.headers };
}

/** The message of an API error body, for people. */
export function errorText(r) {
  const code = r.body?.error?.code;
  if (code && tOr(`error.${code}`, null)) return t(`error.${code}`);
  if (r.body?.error?.message) return r.body.error.message;
  return t('error.generic', { status: r.status });
}

/** IIN and BIN check digit (PROFILES.md): weights 1..11 mod 11; 10 → weights 3..11,1,2; 10 again → invalid. */
export function checkDigitOk(s) {
  if (!/^\d{12}$/.test(s)) return false;
  const d = [...s].map(Number);
  const sum = (w) => d.slice(0, 11).reduce((a, x, i) => a + x * w(i), 0) % 11;
  let c = sum((i) => i + 1);
  if (c === 10) c = sum((i) => ((i + 2) % 11) + 1);
  return c !== 10 && c === d[11];
}

/** Why a string is not an IIN (a key of the texts), or null. */
export function iinProblem(s) {
  if (!/^\d{12}$/.test(s)) return 'check.iin_format';
  if (!checkDigitOk(s)) return 'check.iin_digit';
  const c = Number(s[6]);
  if (c < 1 || c > 6) return 'check.iin_digit';
  const month = Number(s.slice(2, 4));
  const day = Number(s.slice(4, 6));
  if (month < 1 || month > 12 || day < 1 || day > 31) return 'check.iin_date';
  return null;
}

export function emailOk(s) {
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s) && s.length <= 254;
}

/** Time in the reader's locale. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const locale = { kk: 'kk-KZ', ru: 'ru-RU', en: 'en-GB' }[lang] || undefined;
  try {
    return d.toLocaleString(locale, { dateStyle: 'short', timeStyle: 'medium', timeZone: 'Asia/Almaty' });
  } catch {
    return d.toISOString();
  }
}

/** A duration in seconds for people: 45 s, 12 min, 3 h, 2 d. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 120) return t('unit.s', { n: s });
  if (s < 7200) return t('unit.min', { n: Math.round(s / 60) });
  if (s < 172800) return t('unit.h', { n: Math.round(s / 3600) });
  return t('unit.d', { n: Math.round(s / 86400) });
}

/** Marks the current language's link. */
export function markLanguage() {
  for (const a of document.querySelectorAll('[data-lang-link]')) {
    if (a.dataset.langLink === lang) a.setAttribute('aria-current', 'true');
    // Keep the page's other parameters when switching.
    const u = new URL(location.href);
    u.searchParams.set('lang', a.dataset.langLink);
    a.href = u.pathname + u.search;
  }
}

/** A link that downloads bytes as a file. */
export function downloadLink(a, bytes, name, type) {
  if (a.dataset.url) URL.revokeObjectURL(a.dataset.url);
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  a.href = url;
  a.dataset.url = url;
  a.download = name;
}

export function stepName(step) {
  return tOr(`step.${step}`, step);
}

export function stateName(s) {
  return tOr(`state.${s}`, s);
}

export function refusalText(refusal) {
  return tOr(`refusal.${refusal.code}`, refusal.code);
}
