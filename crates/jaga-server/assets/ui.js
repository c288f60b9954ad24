// What the agent's page (app.js) and the hub's page (hub.js) share: DOM
// building with every text escaped, API calls that send a logged-out browser
// to the form, number formats, alert and finding items, routing, theme.

export const main = document.getElementById('main');
export const RANGES = [['15m', 15 * 60e3], ['1h', 3600e3], ['6h', 6 * 3600e3], ['24h', 86400e3], ['7d', 7 * 86400e3]];

// Control characters shown as \xNN (as jaga_model::escape_control does).
export function clean(text) {
  return String(text ?? '').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

// An element; strings among the children go in as text, never as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(clean(child)));
  }
  return el;
}

export async function api(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
  if (response.status === 401) {
    location.assign('/login');
    throw new Error('not logged in');
  }
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

export const bytes = (v) => {
  if (!Number.isFinite(v)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
};
export const rate = (v) => (Number.isFinite(v) ? `${bytes(v)}/s` : '–');
export const pct = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} %` : '–');
export const count = (v) => (Number.isFinite(v) ? String(Math.round(v)) : '–');
export const when = (ms) => {
  const d = new Date(ms);
  return Number.isFinite(d.getTime()) ? d.toLocaleString() : '–';
};
export const fill = (fraction) => `w${Math.max(0, Math.min(20, Math.round(fraction * 20)))}`;

export function levelBadge(level) {
  return h('span', { class: `lvl ${level >= 12 ? 'hi' : level >= 7 ? 'mid' : ''}`, title: 'level' }, String(level));
}

export function failed(where, error) {
  return h('p', { class: 'error', role: 'alert' }, `${where}: ${error.message}`);
}

export function section(title, ...children) {
  return [h('h2', {}, title), ...children.flat()];
}

// The start of an alert's line: when, level, rule, description.
export function alertHead(a) {
  return [
    h('span', { class: 'when' }, when(Date.parse(a.timestamp))),
    levelBadge(a.rule.level),
    h('code', {}, a.rule.id),
    h('span', {}, a.rule.description),
  ];
}

// A finding ({severity, check_id, title, object, evidence, remediation}),
// `extra` (nodes or text) after its object.
export function findingItem(f, ...extra) {
  return h('details', { class: 'finding' },
    h('summary', {}, h('span', { class: `sev-${f.severity}` }, f.severity), ' ', h('code', {}, f.check_id), ' ', f.title,
      ' ', h('span', { class: 'muted' }, `${f.object.kind} ${f.object.name || f.object.id}`), ...extra),
    h('dl', { class: 'kv' }, h('dt', {}, 'Evidence'), h('dd', { class: 'mono' }, f.evidence),
      h('dt', {}, 'Remediation'), h('dd', {}, f.remediation)));
}

// `runtime_escape` → `runtime escape`.
export const spaced = (s) => String(s || 'other').replaceAll('_', ' ');

// Findings under a heading per threat, then per practice; `item` draws one.
export function findingGroups(findings, item) {
  const groups = new Map();
  for (const f of findings) {
    if (!groups.has(f.threat)) groups.set(f.threat, new Map());
    const practices = groups.get(f.threat);
    if (!practices.has(f.practice)) practices.set(f.practice, []);
    practices.get(f.practice).push(f);
  }
  return [...groups].flatMap(([threat, practices]) => section(spaced(threat),
    [...practices].map(([practice, list]) => h('div', {}, h('h3', {}, spaced(practice)), list.map(item)))));
}

// Shows the page `pick(parts, params)` builds for the location's hash and
// marks the nav link named `active(parts)`; returns what `pick` answered.
export async function show(pick, active) {
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  const parts = (path || '/').split('/').filter(Boolean);
  document.querySelectorAll('.top nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === active(parts)));
  let answer = null;
  try {
    answer = await pick(parts, params);
  } catch (error) {
    main.replaceChildren(failed('loading the page', error));
  }
  document.title = `jaga: ${main.querySelector('h1')?.textContent || 'dashboard'}`;
  return answer;
}

// Light or dark: the saved choice, else the system's; the button switches
// and `redraw` draws the page again in the new colours.
export function theme(redraw) {
  const button = document.getElementById('theme');
  const saved = localStorage.getItem('jaga-theme');
  if (saved) document.documentElement.dataset.theme = saved;
  button.addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === 'dark'
      : matchMedia('(prefers-color-scheme: dark)').matches;
    const next = dark ? 'light' : 'dark';
    document.documentElement.dataset.theme = next;
    localStorage.setItem('jaga-theme', next);
    window.dispatchEvent(new Event('resize'));
    redraw();
  });
}
