// The hub's dashboard (`jaga hub` serves index.html with this script): the
// fleet's hosts (#/), alerts (#/alerts) and findings (#/findings) with a
// host filter, and a host's page (#/h/<name>) with its alerts, findings and
// per-container charts from the Prometheus-compatible store the agents
// remote-write to. Read-only; every text from the API goes in as text.
import { Chart } from './chart.js';
import {
  RANGES, alertHead, api, bytes, count, failed, findingGroups, findingItem, h, main, pct, section, show, theme, when,
} from './ui.js';

const REFRESH_MS = 15e3;
const POINTS = 600; // the most points a chart asks the store for
const TOP = 6; // containers per chart, as many as the palette has colours

let timer = null;

// Every `REFRESH_MS`, while `node` is on the page.
function refresh(node, again) {
  clearTimeout(timer);
  timer = setTimeout(() => { if (document.body.contains(node)) again(); }, REFRESH_MS);
}

const plural = (n, word) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;
const hostLink = (name) => h('a', { href: `#/h/${encodeURIComponent(name)}`, class: 'host' }, name);
const stateTag = (state) => h('span', { class: `tag state-${state}` }, state);

function duration(s) {
  if (!Number.isFinite(s)) return '–';
  const parts = [[86400, 'd'], [3600, 'h'], [60, 'min']].map(([size, unit]) => [Math.floor(s / size), unit, size]);
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return `${Math.round(s)} s`;
  const [n, unit, size] = parts[first];
  const next = parts[first + 1];
  const rest = next ? Math.floor((s - n * size) / next[2]) : 0;
  return rest && next ? `${n} ${unit} ${rest} ${next[1]}` : `${n} ${unit}`;
}

// The hub files each record under its host: the alert names it.
function alertItem(a) {
  return h('li', { 'data-seq': a.seq, 'data-host': a.host },
    ...alertHead(a),
    hostLink(a.host),
    a.container ? h('span', { class: 'mono' }, a.container.name) : null,
    h('span', { class: 'muted hide-narrow' }, a.location));
}

// A finding as the agent sends it (an alert of location `audit`), in the
// shape of the agent's audit report.
function finding(a) {
  const [kind, ...id] = String(a.data.object || '').split(' ');
  return {
    severity: a.data.severity, check_id: a.rule.id, title: a.rule.description,
    threat: a.rule.groups[1], practice: a.rule.groups[2],
    object: { kind, id: id.join(' '), name: a.container?.name },
    evidence: a.data.evidence, remediation: a.data.remediation, host: a.host,
  };
}

function findingsOf(records) {
  const findings = records.map(finding);
  const counts = {};
  for (const f of findings) counts[f.severity] = (counts[f.severity] || 0) + 1;
  return [
    h('p', { class: 'muted', id: 'finding-counts' }, Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ') || 'no findings'),
    ...findingGroups(findings, (f) => findingItem(f, ' ', hostLink(f.host))),
  ];
}

// A form whose fields become the hash's query.
function filters(id, route, fields) {
  const form = h('form', { class: 'toolbar', id }, fields, h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = `#/${route}?${next}`;
  });
  return form;
}

function hostSelect(hosts, chosen) {
  return h('select', { name: 'host', 'aria-label': 'host' },
    h('option', { value: '' }, 'every host'),
    hosts.map((x) => h('option', { value: x.agent, selected: x.agent === chosen }, x.agent)));
}

// ---- hosts ------------------------------------------------------------------

async function hostsPage() {
  const cards = h('div', { class: 'cards states', id: 'fleet' });
  const tbody = h('tbody');
  const columns = [['Host'], ['State'], ['Last contact'], ['Version', 'hide-narrow'], ['Uptime', 'num hide-narrow'],
    ['Alerts', 'num'], ['Findings', 'num hide-narrow']];
  main.replaceChildren(h('h1', {}, 'Hosts'), cards,
    h('div', { class: 'scroll top-gap' }, h('table', { id: 'hosts' },
      h('thead', {}, h('tr', {}, columns.map(([title, cls]) => h('th', { class: cls }, title)))), tbody)));
  async function load() {
    let hosts;
    try {
      hosts = await api('/api/v1/hosts');
    } catch (error) {
      tbody.replaceChildren(h('tr', {}, h('td', { colspan: columns.length }, failed('hosts', error))));
      refresh(tbody, load);
      return;
    }
    const states = { up: 0, quiet: 0, down: 0 };
    for (const x of hosts) states[x.state] = (states[x.state] || 0) + 1;
    cards.replaceChildren(...Object.entries(states).map(([state, n]) => h('div', { class: 'card' },
      h('div', { class: 'muted' }, state), h('div', { class: `big state-${state}` }, String(n)))));
    tbody.replaceChildren(...(hosts.length ? hosts.map((x) => h('tr', { 'data-host': x.agent },
      h('td', {}, hostLink(x.agent)),
      h('td', {}, stateTag(x.state)),
      h('td', {}, when(x.last_contact_unix_ms)),
      h('td', { class: 'hide-narrow mono' }, x.version ?? '–'),
      h('td', { class: 'num hide-narrow' }, duration(x.uptime_s ?? NaN)),
      h('td', { class: 'num' }, h('a', { href: `#/alerts?host=${encodeURIComponent(x.agent)}` }, count(x.alerts))),
      h('td', { class: 'num hide-narrow' }, h('a', { href: `#/findings?host=${encodeURIComponent(x.agent)}` }, count(x.findings)))))
      : [h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, 'no host has sent anything yet'))]));
    refresh(tbody, load);
  }
  await load();
}

// ---- alerts and findings ---------------------------------------------------

async function alertsPage(params) {
  const hosts = await api('/api/v1/hosts');
  const field = (name, attrs) => h('input', { name, value: params.get(name) || '', 'aria-label': name, ...attrs });
  const list = h('ul', { class: 'list', id: 'alerts' });
  main.replaceChildren(h('h1', {}, 'Alerts'),
    filters('alert-filters', 'alerts', [hostSelect(hosts, params.get('host')),
      field('level', { type: 'number', min: 0, max: 15, placeholder: 'min level' }),
      field('rule_id', { placeholder: 'rule' })]),
    list);
  const query = new URLSearchParams({ limit: '500' });
  for (const k of ['host', 'level', 'rule_id']) if (params.get(k)) query.set(k, params.get(k));
  try {
    const alerts = await api(`/api/v1/alerts?${query}`);
    list.replaceChildren(...(alerts.length ? alerts.map(alertItem) : [h('li', { class: 'muted' }, 'no alerts match')]));
  } catch (error) {
    list.replaceChildren(failed('alerts', error));
  }
}

async function findingsPage(params) {
  const hosts = await api('/api/v1/hosts');
  const box = h('div', { id: 'findings' });
  main.replaceChildren(h('h1', {}, 'Findings'),
    filters('finding-filters', 'findings', [hostSelect(hosts, params.get('host'))]), box);
  const query = new URLSearchParams({ limit: '10000' });
  if (params.get('host')) query.set('host', params.get('host'));
  try {
    box.replaceChildren(...findingsOf(await api(`/api/v1/findings?${query}`)));
  } catch (error) {
    box.replaceChildren(failed('findings', error));
  }
}

// ---- a host -----------------------------------------------------------------

// A PromQL string literal.
const literal = (text) => JSON.stringify(String(text));

// [title, PromQL over the host's series, format]: the cAdvisor-compatible
// series the agents remote-write, labelled `instance` with the agent's name.
const CHARTS = [
  ['CPU', (host) => `topk(${TOP}, jaga_container_cpu_percent{instance=${literal(host)}})`, pct],
  ['Memory', (host) => `topk(${TOP}, container_memory_working_set_bytes{instance=${literal(host)}})`, bytes],
];

// A range query's matrix as the chart takes it: one time axis, one value
// array per series (NaN where a series has no point), and the names.
function matrix(result) {
  const xs = [...new Set(result.flatMap((s) => s.values.map(([t]) => Math.round(t * 1000))))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = result.map((s) => {
    const values = new Array(xs.length).fill(NaN);
    for (const [t, v] of s.values) values[at.get(Math.round(t * 1000))] = Number(v);
    return values;
  });
  return { xs, ys, names: result.map((s) => s.metric.name || s.metric.id || 'container') };
}

// The host's charts, or why there are none: the hub says first whether a
// metrics store is configured, so that no request fails for want of one.
function charts(host, about) {
  const box = h('div', { id: 'host-charts' });
  if (!about.metrics) {
    box.append(h('p', { class: 'muted', id: 'no-metrics' },
      'No metrics store is configured ([hub] prometheus_url): the agents\' metrics cannot be charted here.'));
    return box;
  }
  let range = { from: Date.now() - 3600e3, to: Date.now(), follow: true };
  const status = h('span', { class: 'muted', id: 'resolution' });
  const buttons = RANGES.map(([label, span]) => h('button', {
    type: 'button', 'data-range': label,
    onclick: () => { range = { from: Date.now() - span, to: Date.now(), follow: true }; load(); },
  }, label));
  const drawn = CHARTS.map(([title, query, format]) => {
    const canvas = h('canvas', { 'data-chart': title, 'aria-label': `${title} chart` });
    const legend = h('span', { class: 'legend' });
    const chart = new Chart(canvas, {
      series: [], format, min: title === 'CPU' ? 1 : 0,
      onZoom: (from, to) => { range = { from, to, follow: false }; load(); },
      onReset: () => { range = { from: Date.now() - 3600e3, to: Date.now(), follow: true }; load(); },
    });
    return { box: h('div', { class: 'chart' }, h('h3', {}, title, legend), canvas), chart, legend, query };
  });
  async function load() {
    if (!document.body.contains(box)) return; // the page was left
    if (range.follow) range = { from: Date.now() - (range.to - range.from), to: Date.now(), follow: true };
    const span = range.to - range.from;
    const step = Math.max(5, Math.ceil(span / 1000 / POINTS));
    buttons.forEach((b) => b.classList.toggle('on', range.follow && RANGES.find(([l]) => l === b.dataset.range)[1] === span));
    status.textContent = `${step} s per point, the ${TOP} highest containers`;
    await Promise.all(drawn.map(async ({ chart, legend, query }) => {
      const q = new URLSearchParams({ query: query(host), start: range.from / 1000, end: range.to / 1000, step });
      try {
        const answer = await api(`/api/v1/metrics/query_range?${q}`);
        const { xs, ys, names } = matrix(answer.data?.result || []);
        legend.replaceChildren(...names.map((n, i) => h('span', { class: `k${(i % TOP) + 1}` }, n)));
        chart.setData(xs, ys, { ...range });
      } catch (error) {
        legend.replaceChildren();
        status.textContent = `metrics: ${error.message}`;
      }
    }));
    if (range.follow) refresh(box, load);
  }
  box.append(
    h('div', { class: 'toolbar' }, buttons, status, h('span', { class: 'muted hide-narrow' }, 'drag on a chart to zoom, double-click to reset')),
    h('div', { class: 'charts' }, drawn.map((x) => x.box)));
  // Drawn once the charts are in the document, where they have their size.
  setTimeout(load);
  return box;
}

async function hostPage(name) {
  const [hosts, about] = await Promise.all([api('/api/v1/hosts'), api('/api/v1/hub')]);
  const x = hosts.find((one) => one.agent === name);
  const detail = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const alerts = h('ul', { class: 'list', id: 'host-alerts' }, h('li', { class: 'muted' }, 'Loading…'));
  const findings = h('div', { id: 'host-findings' }, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(
    h('h1', {}, name, ' ', x ? stateTag(x.state) : h('span', { class: 'tag' }, 'unknown')),
    x ? h('dl', { class: 'kv card', id: 'host-detail' },
      detail('State', x.state), detail('Last contact', when(x.last_contact_unix_ms)),
      detail('First contact', when(x.first_contact_unix_ms)),
      detail('Last heartbeat', x.last_heartbeat_unix_ms ? when(x.last_heartbeat_unix_ms) : 'none'),
      detail('Version', x.version ?? '–'), detail('Uptime', duration(x.uptime_s ?? NaN)),
      detail('Records', `${plural(x.alerts, 'alert')} (events among them), ${plural(x.findings, 'finding')}`))
      : h('p', { class: 'muted' }, 'The hub has heard nothing from this host.'),
    // The series carry the agent's own name (`instance`), which may have
    // dots the hub's name for the host (its subject token) has not.
    ...section('Metrics', charts(x?.instance ?? name, about)),
    ...section('Alerts', alerts),
    ...section('Audit findings', findings));
  const host = encodeURIComponent(name);
  const [mine, found] = await Promise.all([
    api(`/api/v1/alerts?host=${host}&limit=100`).catch((e) => e),
    api(`/api/v1/findings?host=${host}&limit=10000`).catch((e) => e),
  ]);
  if (mine instanceof Error) alerts.replaceChildren(failed('alerts', mine));
  else alerts.replaceChildren(...(mine.length ? mine.map(alertItem) : [h('li', { class: 'muted' }, 'no alerts from this host')]));
  if (found instanceof Error) findings.replaceChildren(failed('findings', found));
  else findings.replaceChildren(...findingsOf(found));
}

// ---- routing ------------------------------------------------------------------

function route() {
  clearTimeout(timer);
  return show((parts, params) => {
    if (parts[0] === 'h' && parts[1]) return hostPage(decodeURIComponent(parts[1]));
    if (parts[0] === 'alerts') return alertsPage(params);
    if (parts[0] === 'findings') return findingsPage(params);
    return hostsPage();
  }, (parts) => ({ alerts: 'alerts', findings: 'findings' }[parts[0]] || (parts.length ? '' : 'hosts')));
}

// The page is the agent's: its links become the hub's, and the hub has no
// live stream to show.
document.querySelector('.top nav').replaceChildren(
  h('a', { href: '#/', 'data-page': 'hosts' }, 'Hosts'),
  h('a', { href: '#/alerts', 'data-page': 'alerts' }, 'Alerts'),
  h('a', { href: '#/findings', 'data-page': 'findings' }, 'Findings'));
document.getElementById('live').hidden = true;
document.querySelector('.brand').textContent = 'jaga hub';
theme(route);
window.addEventListener('hashchange', route);
route();
