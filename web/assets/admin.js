// The administrators' pages: the SLA report per process and step with charts against the
// regulation's deadlines, the monitoring queue, CRL status, operators, the quality survey.
// Each section renders whatever fields its endpoint answers with, and says so when the
// endpoint is not there.

import { $, t, el, api, errorText, markLanguage, when, duration, stepName, tOr } from './common.js';

markLanguage();
const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function unavailable(r) {
  return el('p', { class: 'hint' }, r.status === 404 ? t('admin.not_available') : errorText(r));
}

function table(caption, columns, rows) {
  return el('table', {},
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col' }, c)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => (i === 0 ? el('th', { scope: 'row' }, c) : el('td', {}, c)))))));
}

function value(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A horizontal bar chart of p50/p95/max per step, each against its deadline (a line). */
function chart(process) {
  const steps = process.steps || [];
  const width = 640;
  const label = 250;
  const row = 34;
  const height = steps.length * row + 30;
  const scaleMax = Math.max(1, ...steps.flatMap((s) => [s.max_seconds || 0, s.deadline_seconds || 0]));
  const x = (v) => label + ((width - label - 20) * Math.min(v, scaleMax)) / scaleMax;
  const title = t('admin.chart_title', { process: process.process });
  const g = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, class: 'chart' },
    svg('title', {}, title));
  steps.forEach((s, i) => {
    const y = 10 + i * row;
    g.append(svg('text', { x: 0, y: y + 16, class: 'chart-label' }, stepName(s.step)));
    const bars = [['max_seconds', 'bar-max'], ['p95_seconds', 'bar-p95'], ['p50_seconds', 'bar-p50']];
    for (const [k, cls] of bars) {
      if (s[k] == null) continue;
      const over = s.deadline_seconds != null && s[k] > s.deadline_seconds;
      g.append(svg('rect', { x: label, y: y + 4, width: Math.max(1, x(s[k]) - label), height: 16, class: `${cls}${over ? ' over' : ''}` },
        svg('title', {}, `${t(`admin.${k}`)}: ${duration(s[k])}`)));
    }
    if (s.deadline_seconds != null) {
      g.append(svg('line', { x1: x(s.deadline_seconds), x2: x(s.deadline_seconds), y1: y, y2: y + 24, class: 'deadline' },
        svg('title', {}, `${t('status.deadline')}: ${duration(s.deadline_seconds)}`)));
    }
  });
  g.append(svg('text', { x: label, y: height - 4, class: 'chart-axis' }, '0'));
  g.append(svg('text', { x: width - 20, y: height - 4, class: 'chart-axis', 'text-anchor': 'end' }, duration(scaleMax)));
  return g;
}

async function sla() {
  const r = await api('/api/v1/admin/reports/sla');
  const body = $('sla-body');
  if (!r.ok) { body.replaceChildren(unavailable(r)); return; }
  $('sla-generated').textContent = r.body.generated_at ? t('admin.generated', { time: when(r.body.generated_at) }) : '';
  const parts = [];
  for (const p of r.body.processes || []) {
    const name = `${p.process}${p.service ? ` — ${tOr(`service.${p.service}`, p.service)}` : ''}`;
    parts.push(el('h3', {}, name));
    parts.push(el('p', { class: 'legend' },
      el('span', { class: 'key bar-p50' }), ` ${t('admin.p50_seconds')} `,
      el('span', { class: 'key bar-p95' }), ` ${t('admin.p95_seconds')} `,
      el('span', { class: 'key bar-max' }), ` ${t('admin.max_seconds')} `,
      el('span', { class: 'key deadline-key' }), ` ${t('status.deadline')}`));
    parts.push(chart(p));
    parts.push(table(name, [t('status.step'), t('status.actor'), t('status.deadline'), t('admin.count'),
      t('admin.p50_seconds'), t('admin.p95_seconds'), t('admin.max_seconds'), t('admin.over_deadline')],
    (p.steps || []).map((s) => [stepName(s.step), tOr(`actor.${s.actor}`, s.actor ?? ''),
      s.deadline_seconds == null ? '—' : duration(s.deadline_seconds), value(s.count),
      duration(s.p50_seconds), duration(s.p95_seconds), duration(s.max_seconds), value(s.over_deadline)])));
  }
  body.replaceChildren(...(parts.length ? parts : [el('p', { class: 'hint' }, t('admin.no_data'))]));
}

async function monitoring() {
  const r = await api('/api/v1/admin/monitoring');
  const body = $('monitoring-body');
  if (!r.ok) { body.replaceChildren(unavailable(r)); return; }
  const scalars = Object.entries(r.body).filter(([, v]) => !Array.isArray(v));
  const facts = el('dl', { class: 'facts' }, scalars.flatMap(([k, v]) => [
    el('dt', {}, tOr(`admin.mon.${k}`, k)),
    el('dd', { 'data-field': k }, k.endsWith('_seconds') ? duration(v) : value(v))]));
  const parts = [facts];
  for (const [k, list] of Object.entries(r.body).filter(([, v]) => Array.isArray(v))) {
    if (list.length === 0) { parts.push(el('p', { class: 'hint' }, `${tOr(`admin.mon.${k}`, k)}: 0`)); continue; }
    const cols = [...new Set(list.flatMap((m) => Object.keys(m)))];
    parts.push(table(tOr(`admin.mon.${k}`, k), cols, list.map((m) => cols.map((c) => value(m[c])))));
  }
  body.replaceChildren(...parts);
}

async function crl() {
  const r = await api('/api/v1/admin/crl');
  const body = $('crl-body');
  if (!r.ok) { body.replaceChildren(unavailable(r)); return; }
  body.replaceChildren(table(t('admin.crl'),
    [t('admin.issuer'), t('admin.kind'), t('admin.number'), t('admin.entries'), t('admin.this_update'), t('admin.next_update')],
    r.body.crls.map((c) => [c.issuer, c.kind, value(c.number), value(c.entries), when(c.this_update),
      c.overdue ? `${when(c.next_update)} — ${t('admin.overdue')}` : when(c.next_update)])));
}

async function operators() {
  const r = await api('/api/v1/admin/operators');
  const body = $('operators-body');
  if (!r.ok) { body.replaceChildren(unavailable(r)); return; }
  body.replaceChildren(table(t('admin.operators'),
    [t('field.iin'), t('console.applicant'), t('field.centre'), t('admin.role'), t('admin.status'), t('admin.last_activity')],
    r.body.operators.map((o) => [o.iin, [o.surname, o.name, o.patronymic].filter(Boolean).join(' '), o.centre,
      tOr(`role.${o.role}`, o.role), tOr(`operator.${o.status}`, o.status), when(o.last_activity_at)])));
}

async function survey() {
  const r = await api('/api/v1/admin/reports/survey');
  const body = $('survey-body');
  if (!r.ok) { body.replaceChildren(unavailable(r)); return; }
  const levels = ['not_satisfied', 'partly', 'satisfied'];
  body.replaceChildren(
    el('p', {}, t('admin.answers', { n: r.body.answers })),
    table(t('admin.survey'), [t('admin.question'), ...levels.map((l) => t(`survey.${l}`))],
      [['process', 'survey.q1'], ['information', 'survey.q2']].map(([k, q]) => [t(q), ...levels.map((l) => value(r.body[k]?.[l] ?? 0))])));
}

async function all() {
  $('admin-error').hidden = true;
  await Promise.all([sla(), monitoring(), crl(), operators(), survey()].map((p) => p.catch((e) => {
    $('admin-error').textContent = String(e?.message || e);
    $('admin-error').hidden = false;
  })));
}

$('refresh').addEventListener('click', all);
all();
