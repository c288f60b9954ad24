// jaga dashboard: hash routes (#/, #/c/<id>, #/alerts, #/audit) over the
// REST API and the live stream. Read-only. Text from the API goes into the
// DOM as text (never as HTML), control characters made visible.
import { Chart, sparkline } from './chart.js';
import {
  RANGES, alertHead, api, bytes, count, failed, fill, findingGroups, findingItem, h, main, pct, rate, section, show,
  spaced, theme, when,
} from './ui.js';

const RAW_UP_TO = 3600e3; // spans up to an hour read raw points, longer ones minute rollups
const SPARK_POINTS = 30;

const live = { sample: null, handlers: new Set(), source: null };
const sparks = new Map(); // container id -> recent CPU %

// ---- live stream ----------------------------------------------------------

function connect() {
  const dot = document.getElementById('live');
  const source = new EventSource('/api/v1/stream');
  live.source = source;
  source.addEventListener('open', () => dot.classList.add('on'));
  source.addEventListener('error', () => dot.classList.remove('on'));
  for (const kind of ['sample', 'alert', 'container']) {
    source.addEventListener(kind, (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (kind === 'sample') {
        live.sample = data;
        for (const c of data.containers) {
          if (!c.values) continue;
          const values = sparks.get(c.id) || [];
          values.push(c.values.cpu_percent);
          if (values.length > SPARK_POINTS) values.shift();
          sparks.set(c.id, values);
        }
      }
      for (const handler of live.handlers) handler(kind, data);
    });
  }
}

// ---- overview ---------------------------------------------------------------

async function overview() {
  const [host, containers, alerts] = await Promise.all([
    api('/api/v1/host'),
    api('/api/v1/containers'),
    api('/api/v1/alerts?limit=10').catch(() => []),
  ]);
  const cards = h('div', { class: 'cards' });
  const sort = { key: 'name', asc: true };
  const filter = h('input', { type: 'search', placeholder: 'filter by name, image or state', 'aria-label': 'filter containers' });
  const tbody = h('tbody');
  const columns = [
    ['name', 'Name'], ['image', 'Image', 'hide-narrow'], ['state', 'State'], ['cpu', 'CPU', 'num'],
    ['memory', 'Memory (of limit)', 'num'], ['network', 'Net rx / tx', 'num hide-narrow'], [null, 'CPU trend', 'hide-narrow'],
  ];
  const head = h('tr', {}, columns.map(([key, title, cls]) => h('th', {
    class: `${cls || ''} ${key === sort.key ? 'sorted asc' : ''}`,
    'data-key': key,
    onclick: key ? (e) => {
      sort.asc = sort.key === key ? !sort.asc : true;
      sort.key = key;
      head.querySelectorAll('th').forEach((th) => th.classList.remove('sorted', 'asc'));
      e.currentTarget.classList.add('sorted');
      if (sort.asc) e.currentTarget.classList.add('asc');
      rows();
    } : undefined,
  }, title)));
  const alertList = h('ul', { class: 'list', id: 'newest-alerts' }, alerts.map(alertItem));
  if (!alerts.length) alertList.append(h('li', { class: 'muted' }, 'no alerts'));

  const figures = () => new Map((live.sample?.containers || []).map((c) => [c.id, c.values || {}]));
  function rows() {
    const by = figures();
    const needle = filter.value.trim().toLowerCase();
    const list = containers
      .map((c) => {
        const v = by.get(c.id) || {};
        const limit = v.memory_limit_bytes;
        return {
          c, v,
          name: c.name, image: c.image, state: c.state,
          cpu: v.cpu_percent ?? -1,
          memory: v.memory_working_set_bytes ?? -1,
          network: (v.network_rx_bytes_per_second ?? 0) + (v.network_tx_bytes_per_second ?? 0),
          limit,
        };
      })
      .filter((r) => !needle || `${r.name} ${r.image} ${r.state}`.toLowerCase().includes(needle));
    list.sort((a, b) => {
      const x = a[sort.key], y = b[sort.key];
      const order = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
      return sort.asc ? order : -order;
    });
    tbody.replaceChildren(...list.map((r) => {
      const spark = h('canvas', { class: 'spark', width: 120, height: 24, 'aria-label': 'CPU trend' });
      const limited = r.limit > 0 && r.limit < 2 ** 60;
      const tr = h('tr', { class: r.c.live ? '' : 'stopped', 'data-id': r.c.id },
        h('td', {}, h('a', { href: `#/c/${encodeURIComponent(r.c.id)}` }, r.name)),
        h('td', { class: 'hide-narrow mono' }, r.image),
        h('td', {}, r.state),
        h('td', { class: 'num' }, r.cpu >= 0 ? pct(r.cpu) : '–'),
        h('td', { class: 'num' }, r.memory >= 0 ? `${bytes(r.memory)}${limited ? ` (${pct((100 * r.memory) / r.limit)})` : ''}` : '–'),
        h('td', { class: 'num hide-narrow' }, r.v.network_rx_bytes_per_second === undefined ? '–'
          : `${rate(r.v.network_rx_bytes_per_second)} / ${rate(r.v.network_tx_bytes_per_second)}`),
        h('td', { class: 'hide-narrow' }, spark));
      return tr;
    }));
    // Drawn once in the document, where the canvases have their size.
    for (const canvas of tbody.querySelectorAll('canvas.spark')) {
      sparkline(canvas, sparks.get(canvas.closest('tr').dataset.id) || []);
    }
  }
  function summary() {
    const s = live.sample;
    const running = containers.filter((c) => c.live).length;
    const cores = s?.cpu_cores || host.machine.cpu_cores || 1;
    const memory = s?.memory_bytes || host.machine.memory_bytes || 1;
    let cpu = 0, used = 0;
    for (const c of s?.containers || []) {
      cpu += c.values?.cpu_percent || 0;
      used += c.values?.memory_working_set_bytes || 0;
    }
    const root = s?.data_root || host.data_root;
    const card = (title, big, fraction, note) => h('div', { class: 'card' },
      h('div', { class: 'muted' }, title), h('div', { class: 'big' }, big),
      fraction === null ? null : h('div', { class: 'bar' }, h('span', { class: fill(fraction) })),
      note ? h('div', { class: 'muted' }, note) : null);
    const states = {};
    for (const c of containers) states[c.state] = (states[c.state] || 0) + 1;
    cards.replaceChildren(
      card('Containers', `${running} running`, null,
        Object.entries(states).map(([k, n]) => `${n} ${k}`).join(', ')),
      card('CPU (containers)', pct(cpu / cores), cpu / cores / 100, `${cores} cores on ${host.machine.hostname}`),
      card('Memory (containers)', bytes(used), used / memory, `of ${bytes(memory)}`),
      root ? card('Data root disk', pct((100 * root.used_bytes) / root.capacity_bytes), root.used_bytes / root.capacity_bytes,
        `${bytes(root.used_bytes)} of ${bytes(root.capacity_bytes)} on ${root.path}`) : card('Data root disk', '–', null, 'not measured'));
  }
  filter.addEventListener('input', rows);
  main.replaceChildren(
    h('h1', {}, `Overview of ${host.machine.hostname}`), cards,
    ...section('Containers', h('div', { class: 'toolbar' }, filter),
      h('div', { class: 'scroll' }, h('table', { id: 'containers' }, h('thead', {}, head), tbody))),
    ...section('Newest alerts', alertList));
  summary();
  rows();
  seedSparks(containers.filter((c) => c.live)).then(rows);
  return (kind, data) => {
    if (kind === 'sample') { summary(); rows(); }
    if (kind === 'alert') {
      alertList.querySelector('.muted')?.remove();
      alertList.prepend(alertItem(data));
      while (alertList.children.length > 10) alertList.lastChild.remove();
    }
    if (kind === 'container') {
      api('/api/v1/containers').then((fresh) => { containers.splice(0, containers.length, ...fresh); summary(); rows(); });
    }
  };
}

// The trend of the last minutes from history, a few requests at a time.
async function seedSparks(running) {
  const queue = running.filter((c) => !sparks.has(c.id));
  const worker = async () => {
    for (let c = queue.shift(); c; c = queue.shift()) {
      try {
        const answer = await api(`/api/v1/containers/${encodeURIComponent(c.id)}/history?from=${(Date.now() - 15 * 60e3) / 1000}&step=30s`);
        const values = answer.points.map((p) => p.avg.cpu_percent).slice(-SPARK_POINTS);
        sparks.set(c.id, [...values, ...(sparks.get(c.id) || [])].slice(-SPARK_POINTS));
      } catch { /* a trend is a nicety */ }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

function alertItem(a) {
  const container = a.container;
  return h('li', { 'data-seq': a.seq },
    ...alertHead(a),
    container ? h('a', { href: `#/c/${encodeURIComponent(container.id)}?at=${Date.parse(a.timestamp)}` }, container.name) : null,
    h('span', { class: 'muted hide-narrow' }, a.location));
}

// ---- container --------------------------------------------------------------

// [title, series, format, legend, sparse]. A sparse chart's series come at
// their own cadence (disk usage, once per filesystem walk): it draws only
// the points that hold one of them, joined, so it never dips between walks.
const CHARTS = [
  ['CPU', ['cpu_percent'], pct, ['CPU %']],
  ['Memory', ['memory_usage_bytes', 'memory_working_set_bytes', 'memory_limit_bytes'], bytes, ['usage', 'working set', 'limit']],
  ['Network', ['network_rx_bytes_per_second', 'network_tx_bytes_per_second'], rate, ['rx', 'tx']],
  ['Block I/O', ['block_read_bytes_per_second', 'block_write_bytes_per_second'], rate, ['read', 'write']],
  ['Filesystem', ['writable_layer_bytes', 'volume_bytes', 'log_file_bytes'], bytes, ['writable layer', 'volumes', 'log'], true],
  ['PIDs', ['pids'], count, ['pids']],
];

function valueOf(name, v) {
  // "No limit" is reported as a huge number: leave it off the chart.
  if (name === 'memory_limit_bytes' && !(v > 0 && v < 2 ** 50)) return NaN;
  return v;
}

async function containerPage(id, params) {
  const c = await api(`/api/v1/containers/${encodeURIComponent(id)}`);
  const at = Number(params.get('at'));
  let range = at ? { from: at - 30 * 60e3, to: at + 30 * 60e3, follow: false }
    : { from: Date.now() - 3600e3, to: Date.now(), follow: true };
  const buttons = RANGES.map(([label, span]) => h('button', {
    type: 'button', 'data-range': label,
    onclick: () => { range = { from: Date.now() - span, to: Date.now(), follow: true }; load(); },
  }, label));
  const status = h('span', { class: 'muted', id: 'resolution' });
  const charts = CHARTS.map(([title, names, format, labels, sparse]) => {
    const canvas = h('canvas', { 'data-chart': title, 'aria-label': `${title} chart` });
    const box = h('div', { class: 'chart' },
      h('h3', {}, title, h('span', { class: 'legend' }, labels.map((l, i) => h('span', { class: `k${i + 1}` }, l)))), canvas);
    const chart = new Chart(canvas, {
      series: names, format,
      min: title === 'CPU' ? 1 : 0,
      onZoom: (from, to) => { range = { from, to, follow: false }; load(); },
      onReset: () => { range = { from: Date.now() - 3600e3, to: Date.now(), follow: true }; load(); },
    });
    return { box, chart, names, sparse };
  });
  const has = (names, values) => names.some((n) => Number.isFinite(values[n]));
  async function load() {
    const span = range.to - range.from;
    const step = span <= RAW_UP_TO ? 0 : Math.max(60, Math.ceil(span / 1000 / 900 / 60) * 60);
    buttons.forEach((b) => b.classList.toggle('on', range.follow && RANGES.find(([l]) => l === b.dataset.range)[1] === span));
    status.textContent = step ? `minute rollups, ${step / 60} min per point` : 'raw points';
    const query = `from=${range.from / 1000}&to=${range.to / 1000}${step ? `&step=${step}s` : ''}`;
    try {
      const answer = await api(`/api/v1/containers/${encodeURIComponent(c.id)}/history?${query}`);
      for (const { chart, names, sparse } of charts) {
        const points = sparse ? answer.points.filter((p) => has(names, p.avg)) : answer.points;
        chart.setData(points.map((p) => p.unix_ms), names.map((n) => points.map((p) => valueOf(n, p.avg[n]))), { ...range });
      }
    } catch (error) {
      status.textContent = `history: ${error.message}`;
    }
  }
  const detail = (k, v) => (v === undefined || v === null || v === '' ? [] : [h('dt', {}, k), h('dd', {}, v)]);
  const labels = Object.entries(c.labels || {});
  const logs = logView(c);
  main.replaceChildren(
    h('h1', {}, c.name, ' ', h('span', { class: 'tag' }, c.state)),
    h('dl', { class: 'kv card' },
      detail('ID', c.id), detail('Image', c.image), detail('State', c.live ? `${c.state} (collected now)` : c.state),
      detail('Created', c.created_unix && when(c.created_unix * 1000)),
      detail('Started', c.started_unix && when(c.started_unix * 1000)),
      detail('PID', c.pid), detail('Network mode', c.network_mode), detail('Cgroup', c.cgroup_path),
      detail('Filesystem', c.fs && `${bytes(c.fs.usage_bytes)}${c.fs.limit_bytes ? ` of ${bytes(c.fs.limit_bytes)}` : ''}`),
      detail('Last seen', when(c.last_seen_unix_ms)),
      detail('Labels', labels.length ? h('div', {}, labels.map(([k, v]) => h('div', { class: 'mono' }, `${k}=${v}`))) : null)),
    h('dl', { class: 'kv card', id: 'container-setup', hidden: true }),
    h('div', { class: 'toolbar' }, buttons, status, h('span', { class: 'muted hide-narrow' }, 'drag on a chart to zoom, double-click to reset')),
    h('div', { class: 'charts' }, charts.map((x) => x.box)),
    ...section('Logs', logs.box),
    ...section('Alerts', h('ul', { class: 'list', id: 'container-alerts' })),
    ...section('Events', h('ul', { class: 'list', id: 'container-events' })),
    ...section('Audit findings', h('div', { id: 'container-findings' })));
  load();
  fillHistory(c);
  fillSetup(c, detail);
  logs.start();
  return (kind, data) => {
    if (kind === 'sample' && range.follow) {
      const mine = data.containers.find((x) => x.id === c.id);
      if (mine && mine.values) {
        for (const { chart, names, sparse } of charts) {
          if (!sparse || has(names, mine.values)) chart.append(mine.unix_ms, names.map((n) => valueOf(n, mine.values[n])));
        }
      }
    }
    if (kind === 'alert' && data.container && data.container.id === c.id) {
      document.getElementById('container-alerts')?.prepend(alertItem(data));
    }
    if (kind === 'container' && data.container_id === c.id) {
      document.getElementById('container-events')?.prepend(eventItem({ docker: { time_nano: data.unix_ms * 1e6, action: data.action, attributes: {} } }));
    }
  };
}

function eventItem(e) {
  const d = e.docker;
  return h('li', {}, h('span', { class: 'when' }, when(d.time_nano / 1e6)), h('code', {}, d.action),
    d.action_detail ? h('span', { class: 'mono' }, d.action_detail) : null,
    e.exec_command ? h('span', { class: 'mono' }, e.exec_command) : null,
    d.attributes?.exitCode ? h('span', { class: 'muted' }, `exit ${d.attributes.exitCode}`) : null);
}

// How the container was set up (docker inspect): command, ports, mounts,
// networks, restart policy and count, health, limits.
async function fillSetup(c, detail) {
  let s;
  try {
    s = await api(`/api/v1/containers/${encodeURIComponent(c.id)}/inspect`);
  } catch {
    return; // not available here (no Engine), or the container is gone
  }
  const box = document.getElementById('container-setup');
  if (!box) return;
  const list = (items) => (items.length ? h('div', {}, items.map((t) => h('div', { class: 'mono' }, t))) : null);
  const ports = s.ports.map((p) => (p.host_port ? `${p.host_ip || '0.0.0.0'}:${p.host_port} → ${p.container_port}` : `${p.container_port} (not published)`));
  const mounts = s.mounts.map((m) => `${m.kind} ${m.source} → ${m.destination}${m.read_write ? '' : ' (read-only)'}`);
  const networks = s.networks.map((n) => `${n.name}${n.ip_address ? ` ${n.ip_address}` : ''}${n.gateway ? ` via ${n.gateway}` : ''}`);
  const l = s.limits;
  const limits = [
    l.memory_bytes && `memory ${bytes(l.memory_bytes)}`,
    l.nano_cpus && `CPUs ${(l.nano_cpus / 1e9).toFixed(2)}`,
    l.cpu_shares && `CPU shares ${l.cpu_shares}`,
    l.cpuset_cpus && `cpuset ${l.cpuset_cpus}`,
    l.pids && `PIDs ${l.pids}`,
  ].filter(Boolean);
  const security = [
    s.privileged && 'privileged',
    s.read_only_root && 'read-only root',
    s.user && `user ${s.user}`,
    ...s.cap_add.map((cap) => `+${cap}`),
    ...s.cap_drop.map((cap) => `-${cap}`),
  ].filter(Boolean);
  const health = s.health && `${s.health.status}${s.health.failing_streak ? `, ${s.health.failing_streak} failing` : ''}${s.health.last_output ? ` — ${s.health.last_output}` : ''}`;
  box.replaceChildren(
    ...detail('Command', s.command && h('code', { class: 'mono' }, s.command)),
    ...detail('Working dir', s.working_dir),
    ...detail('Ports', list(ports)),
    ...detail('Mounts', list(mounts)),
    ...detail('Networks', list(networks)),
    ...detail('Restart', `${s.restart_policy}, restarted ${s.restart_count} time${s.restart_count === 1 ? '' : 's'}`),
    ...detail('Health', health),
    ...detail('Limits', limits.length ? limits.join(', ') : 'none'),
    ...detail('Security', security.length ? security.join(', ') : null));
  box.hidden = false;
}

// The audit report, or an Error saying why there is none. The agent's state is
// asked first: the audit endpoint answers 404 when the audit is off and 503
// before its first pass, and the browser logs each as a console error.
async function auditReport() {
  const host = await api('/api/v1/host');
  if (host.agent.audit === 'disabled') throw new Error('the audit is disabled ([audit] disabled = true)');
  if (host.agent.audit === 'pending') throw new Error('the first audit has not finished yet');
  return api('/api/v1/audit');
}

async function fillHistory(c) {
  const id = encodeURIComponent(c.id);
  const [alerts, events, audit] = await Promise.all([
    api(`/api/v1/alerts?container=${id}&limit=50`).catch((e) => e),
    api(`/api/v1/events?container=${id}&limit=50`).catch((e) => e),
    auditReport().catch((e) => e),
  ]);
  const put = (where, items, render, none) => {
    const list = document.getElementById(where);
    if (!list) return;
    if (items instanceof Error) list.replaceChildren(failed(where.replace('container-', ''), items));
    else list.replaceChildren(...(items.length ? items.map(render) : [h('li', { class: 'muted' }, none)]));
  };
  put('container-alerts', alerts, alertItem, 'no alerts for this container');
  put('container-events', events, eventItem, 'no events stored for this container');
  const box = document.getElementById('container-findings');
  if (!box) return;
  if (audit instanceof Error) { box.replaceChildren(h('p', { class: 'muted' }, audit.message)); return; }
  const mine = (audit.findings || []).filter((f) => f.object.id === c.id || f.object.name === c.name);
  box.replaceChildren(...(mine.length ? mine.map((f) => findingItem(f)) : [h('p', { class: 'muted' }, 'no findings for this container')]));
}

// A log line's level as its program wrote it: a JSON field (level, lvl,
// severity, log.level; pino's and bunyan's numbers), logfmt's level=, a
// bracketed word ([error], nginx), a word in capitals (ERROR), a leading
// word (error: ...) or glog's E/W prefix. A word in a URL or a message
// (GET /error.html, "no errors") is not a level.
const LEVEL_WORDS = new Map([
  ...['error', 'err', 'fatal', 'crit', 'critical', 'panic', 'emerg', 'emergency', 'alert', 'severe'].map((w) => [w, 'error']),
  ...['warn', 'warning'].map((w) => [w, 'warn']),
]);
const levelWord = (word) => LEVEL_WORDS.get(String(word).toLowerCase()) || '';
const MARKED_LEVEL = /\[(error|err|fatal|crit|critical|panic|emerg|alert|severe|warn|warning)\]|\b(ERROR|ERR|FATAL|CRITICAL|CRIT|PANIC|EMERG|ALERT|SEVERE|WARN|WARNING)\b/;
function levelOf(text) {
  const line = text.trimStart();
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line);
      const v = o.level ?? o.lvl ?? o.severity ?? o.loglevel ?? o.log_level ?? o.levelname ?? o['log.level'] ?? o.log?.level;
      if (typeof v === 'number') return v >= 50 ? 'error' : v >= 40 ? 'warn' : '';
      if (v !== undefined && v !== null) return levelWord(v);
    } catch { /* not JSON: read it as text */ }
  }
  const field = /(?:^|\s)(?:level|lvl|severity)=["']?([a-z]+)/i.exec(line);
  if (field) return levelWord(field[1]);
  const marked = MARKED_LEVEL.exec(line);
  if (marked) return levelWord(marked[1] || marked[2]);
  const leading = /^(error|err|fatal|critical|panic|warn|warning)\b/i.exec(line);
  if (leading) return levelWord(leading[1]);
  const glog = /^([EFW])\d{4} \d\d:\d\d/.exec(line);
  if (glog) return glog[1] === 'W' ? 'warn' : 'error';
  return '';
}

// Recent log lines, then new ones every two seconds; search, stream and
// level filters.
function logView(c) {
  const search = h('input', { type: 'search', placeholder: 'search the logs', 'aria-label': 'search the logs' });
  const stream = h('select', { 'aria-label': 'stream' },
    h('option', { value: '' }, 'stdout + stderr'), h('option', { value: 'stdout' }, 'stdout'), h('option', { value: 'stderr' }, 'stderr'));
  const level = h('select', { 'aria-label': 'level' },
    h('option', { value: '' }, 'any level'), h('option', { value: 'error' }, 'errors'), h('option', { value: 'warn' }, 'warnings and errors'));
  const view = h('div', { class: 'logs mono', id: 'logs', tabindex: 0 });
  const note = h('span', { class: 'muted' });
  let lines = [];
  let after = null;
  let timer = null;
  function render() {
    const needle = search.value.toLowerCase();
    const shown = lines.filter((l) => (!stream.value || l.stream === stream.value)
      && (!needle || l.line.toLowerCase().includes(needle))
      && (!level.value || levelOf(l.line) === 'error' || (level.value === 'warn' && levelOf(l.line) === 'warn')));
    const stick = view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
    view.replaceChildren(...shown.slice(-1000).map((l) => h('div', { class: l.stream, 'data-ms': l.unix_ms },
      h('span', { class: 'muted' }, new Date(l.unix_ms).toLocaleTimeString(), ' '), l.line)));
    if (stick) view.scrollTop = view.scrollHeight;
  }
  async function poll() {
    try {
      const query = after === null ? 'tail=300' : `after=${encodeURIComponent(after)}`;
      const answer = await api(`/api/v1/containers/${encodeURIComponent(c.id)}/logs?${query}`);
      if (answer.lines.length) {
        lines = lines.concat(answer.lines).slice(-5000);
        render();
      }
      after = answer.cursor;
      note.textContent = answer.source ? `from ${answer.source}` : '';
    } catch (error) {
      note.textContent = `logs: ${error.message}`;
      if (error.status === 404) return;
    }
    if (document.body.contains(view)) timer = setTimeout(poll, 2000);
  }
  for (const input of [search, stream, level]) input.addEventListener('input', render);
  return {
    box: h('div', {}, h('div', { class: 'toolbar' }, search, stream, level, note), view),
    start: () => { clearTimeout(timer); poll(); },
  };
}

// ---- alerts -------------------------------------------------------------------

async function alertsPage(params) {
  const field = (name, attrs) => h('input', { name, value: params.get(name) || '', 'aria-label': name, ...attrs });
  const form = h('form', { class: 'toolbar', id: 'alert-filters' },
    field('level', { type: 'number', min: 0, max: 15, placeholder: 'min level' }),
    field('rule_id', { placeholder: 'rule' }),
    field('group', { placeholder: 'group' }),
    field('container', { placeholder: 'container' }),
    field('q', { type: 'search', placeholder: 'text' }),
    field('from', { type: 'datetime-local', step: 1 }),
    field('to', { type: 'datetime-local', step: 1 }),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
    location.hash = `#/alerts?${next}`;
  });
  const list = h('ul', { class: 'list', id: 'alerts' });
  main.replaceChildren(h('h1', {}, 'Alerts'), form, list);
  const query = new URLSearchParams({ limit: '500' });
  for (const k of ['level', 'rule_id', 'container', 'q']) if (params.get(k)) query.set(k, params.get(k));
  for (const k of ['from', 'to']) if (params.get(k)) query.set(k, new Date(params.get(k)).toISOString());
  const group = params.get('group');
  const matches = (a) => (!group || a.rule.groups.includes(group))
    && (!params.get('level') || a.rule.level >= Number(params.get('level')))
    && (!params.get('rule_id') || a.rule.id === params.get('rule_id'))
    && (!params.get('container') || [a.container?.id, a.container?.name].some((x) => x && (x === params.get('container') || x.startsWith(params.get('container')))))
    && (!params.get('q') || JSON.stringify(a).toLowerCase().includes(params.get('q').toLowerCase()))
    && !params.get('to');
  try {
    const alerts = (await api(`/api/v1/alerts?${query}`)).filter((a) => !group || a.rule.groups.includes(group));
    list.replaceChildren(...(alerts.length ? alerts.map(alertItem) : [h('li', { class: 'muted' }, 'no alerts match')]));
  } catch (error) {
    list.replaceChildren(failed('alerts', error));
  }
  return (kind, data) => {
    if (kind === 'alert' && matches(data)) {
      list.querySelector('li.muted')?.remove();
      list.prepend(alertItem(data));
    }
  };
}

// ---- audit --------------------------------------------------------------------

async function auditPage() {
  let report;
  try {
    report = await auditReport();
  } catch (error) {
    main.replaceChildren(h('h1', {}, 'Audit'), h('p', { class: 'muted' }, error.message));
    return null;
  }
  main.replaceChildren(
    h('h1', {}, 'Audit'),
    h('div', { class: 'cards', id: 'scores' }, Object.entries(report.scores).map(([threat, score]) => h('div', { class: 'card' },
      h('div', { class: 'muted' }, spaced(threat)), h('div', { class: 'score' }, String(score)),
      h('div', { class: 'bar' }, h('span', { class: fill(score / 100) }))))),
    h('p', { class: 'muted' }, Object.entries(report.counts).map(([s, n]) => `${n} ${s}`).join(', ') || 'no findings'),
    ...findingGroups(report.findings, (f) => findingItem(f)));
  return null;
}

// ---- routing ------------------------------------------------------------------

async function route() {
  live.handlers.clear();
  const handler = await show((parts, params) => {
    if (parts[0] === 'c' && parts[1]) return containerPage(decodeURIComponent(parts[1]), params);
    if (parts[0] === 'alerts') return alertsPage(params);
    if (parts[0] === 'audit') return auditPage();
    return overview();
  }, (parts) => ({ alerts: 'alerts', audit: 'audit' }[parts[0]] || (parts.length ? '' : 'overview')));
  if (handler) live.handlers.add(handler);
}

theme(route);
connect();
// Browsers allow six connections per host over HTTP/1.1: a page kept in
// the back-forward cache must not hold its stream.
window.addEventListener('pagehide', () => live.source?.close());
window.addEventListener('pageshow', (e) => { if (e.persisted) connect(); });
window.addEventListener('hashchange', route);
route();
