// @ts-check
// The operations dashboard: plain browser JavaScript, no build step, no third-party code.
// It calls the JSON API with the token the person signed in with (Authorization and
// x-organization-id headers; kept in sessionStorage, never in a URL) and draws its charts as
// inline SVG. Every text from the server is set with textContent, never parsed as HTML.
'use strict';

(() => {
  const API = '/api/v1/chat';
  const STORAGE = { token: 'honeyjar.token', orgId: 'honeyjar.orgId', thread: 'honeyjar.dashboardThread' };
  const DEPTH_WINDOW_MS = 5 * 60_000;
  const THROUGHPUT_MINUTES = 15;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** The four depth series: told apart by colour, dash pattern and name (never by colour alone). */
  const SERIES = [
    { key: 'waiting', label: 'waiting', className: 's-waiting', dash: '' },
    { key: 'active', label: 'active', className: 's-active', dash: '6 3' },
    { key: 'delayed', label: 'delayed', className: 's-delayed', dash: '2 3' },
    { key: 'failed', label: 'failed', className: 's-failed', dash: '8 3 2 3' },
  ];
  const STATUS_TEXT = {
    healthy: { symbol: '✓', text: 'Healthy' },
    degraded: { symbol: '▲', text: 'Degraded' },
    unhealthy: { symbol: '✕', text: 'Unhealthy' },
  };
  /** The pipeline's stages in the order they are listed (intent, security and rag run in parallel). */
  const PIPELINE_ORDER = ['intent', 'security', 'rag', 'rocketreach', 'openai'];
  const STEP_SYMBOL = { completed: '✓', failed: '✕', cancelled: '⊘', active: '…', retrying: '↻', waiting: '·', delayed: '⏱', pending: '·' };

  const $ = (selector) => document.querySelector(selector);

  const state = {
    creds: null,
    /** Organization admin or operator: the organization's metrics and the alerts. */
    admin: false,
    /** System operator: process details, every queue, Bull Board, acknowledging alerts. */
    operator: false,
    role: null,
    userId: null,
    generation: 0,
    /** True once the board is shown: a 401 then signs out (during sign-in it is the form's error). */
    active: false,
    timers: new Map(),
    samples: [], // {t, queues: {name: {waiting, active, delayed, failed}}}
    queueOrder: [],
    stageOfQueue: {},
    throughput: null, // {stage: [{minute, completed, failed}]}
    throughputTo: 0,
  };

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'className') node.className = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === '') continue;
      node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) if (child) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  function time(iso) {
    if (!iso) return '—';
    const date = new Date(iso);
    return Date.now() - date.getTime() < 12 * 3600_000 ? timeFormat.format(date) : dateTimeFormat.format(date);
  }
  function duration(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
    if (ms < 7200_000) return `${Math.round(ms / 60_000)} min`;
    return `${(ms / 3600_000).toFixed(1)} h`;
  }
  function bytes(n) {
    return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : `${Math.round(n / (1 << 20))} MiB`;
  }
  function number(n) {
    return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(2)));
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, what) {
      super(message);
      this.status = status;
      this.code = code;
      this.what = what;
    }
  }

  /**
   * One call to the API with the signed-in credentials. A non-2xx answer becomes an ApiError with
   * the server's `{error:{code,message}}`; a 401 signs out (the token is no longer accepted).
   * `accept` lists statuses whose body is data (health answers 503 when unhealthy).
   * @param {string} method
   * @param {string} path
   * @param {{ body?: unknown, accept?: number[] }} [options]
   */
  async function api(method, path, { body, accept = [] } = {}) {
    const creds = state.creds;
    if (!creds) throw new ApiError(401, 'signed_out', 'Not signed in', `${method} ${path}`);
    const headers = { authorization: `Bearer ${creds.token}`, 'x-organization-id': creds.orgId, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = path.startsWith('/') ? path : `${API}/${path}`;
    const what = `${method} ${url.split('?')[0]}`;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (error) {
      throw new ApiError(0, 'network_error', `The server did not answer (${error.message})`, what);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.ok || accept.includes(response.status)) return data;
    const error = new ApiError(
      response.status,
      data?.error?.code ?? `http_${response.status}`,
      data?.error?.message ?? (response.statusText || 'Request failed'),
      what,
    );
    if (response.status === 401 && state.active && creds === state.creds) signOut(`Signed out: the server answered 401 (${error.code}: ${error.message}).`);
    throw error;
  }

  function describe(error) {
    if (error instanceof ApiError) return `${error.what} failed: ${error.status || 'no answer'} ${error.code} — ${error.message}`;
    return `Unexpected error: ${error?.message ? error.message : String(error)}`;
  }

  function showError(area, error) {
    const node = /** @type {HTMLElement | null} */ (document.querySelector(`[data-error-for="${area}"]`));
    if (!node) return;
    if (error) {
      node.textContent = describe(error);
      node.hidden = false;
    } else {
      node.textContent = '';
      node.hidden = true;
    }
  }

  /** Runs `fn` now and then every `intervalMs` after it finished, while this sign-in lasts. */
  function poll(area, intervalMs, fn) {
    const generation = state.generation;
    const tick = async () => {
      if (generation !== state.generation) return;
      let delay = intervalMs;
      try {
        await fn();
        if (generation === state.generation) showError(area, null);
      } catch (error) {
        if (generation !== state.generation) return;
        if (error instanceof ApiError && error.status === 401) return;
        showError(area, error);
        if (error instanceof ApiError && error.status === 429) delay = Math.max(intervalMs, 10_000);
      }
      if (generation === state.generation) state.timers.set(area, setTimeout(tick, delay));
    };
    tick();
  }

  // ---------------------------------------------------------------- sign-in

  async function signIn(token, orgId) {
    state.creds = { token, orgId };
    // Proves the token and the membership (errors are the sign-in's errors) and says what to show.
    const me = await api('GET', '/api/v1/me');
    state.userId = me.userId;
    state.role = me.role;
    state.operator = me.operator === true;
    // Admins see their organization's metrics and the alerts; operators the system-wide figures too.
    state.admin = me.role === 'admin' || state.operator;
    let note = '';
    if (state.operator) {
      // Operators also get a Bull Board session (an HttpOnly cookie for /admin, holding an opaque id).
      const response = await fetch('/dashboard/session', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ token, orgId }),
        cache: 'no-store',
        credentials: 'same-origin',
      }).catch(() => null);
      if (response?.status !== 201) {
        const session = response ? await response.json().catch(() => null) : null;
        note = `Bull Board is unavailable: ${session?.error?.code ?? 'no answer'} — ${session?.error?.message ?? 'the session could not be opened'}`;
      }
    }
    sessionStorage.setItem(STORAGE.token, token);
    sessionStorage.setItem(STORAGE.orgId, orgId);
    return note;
  }

  function signOut(message) {
    state.generation++;
    for (const timer of state.timers.values()) clearTimeout(timer);
    state.timers.clear();
    state.active = false;
    state.creds = null;
    state.admin = false;
    state.operator = false;
    state.role = null;
    state.userId = null;
    state.samples = [];
    state.throughput = null;
    sessionStorage.removeItem(STORAGE.token);
    sessionStorage.removeItem(STORAGE.orgId);
    fetch('/admin/session', { method: 'DELETE', credentials: 'same-origin' }).catch(() => undefined);
    show($('#board'), false);
    show($('#account'), false);
    show($('#sign-in'), true);
    setNotice(message);
    $('#queue-grid').replaceChildren();
    $('#token').value = '';
    $('#token').focus();
  }

  function setNotice(message) {
    const notice = $('#notice');
    notice.textContent = message || '';
    notice.hidden = !message;
  }

  async function onSignInSubmit(event) {
    event.preventDefault();
    const token = $('#token').value.trim();
    const orgId = $('#org').value.trim();
    const error = $('#sign-in-error');
    error.hidden = true;
    if (!token || !UUID.test(orgId)) {
      error.textContent = !token ? 'Enter an API token.' : 'The organization id must be a UUID.';
      error.hidden = false;
      return;
    }
    const button = $('#sign-in-button');
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      const note = await signIn(token, orgId);
      enterBoard(note);
    } catch (err) {
      state.creds = null;
      error.textContent = describe(err);
      error.hidden = false;
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  }

  function enterBoard(note) {
    setNotice(state.startNotice || '');
    state.startNotice = '';
    show($('#sign-in'), false);
    show($('#board'), true);
    show($('#account'), true);
    $('#whoami').textContent = `Organization ${state.creds.orgId.slice(0, 8)}… · ${state.role}${state.operator ? ' · system operator' : ''}`;
    show($('#bull-board-link'), state.operator && !note);
    if (note) setNotice(note);
    show($('#alerts-admin-only'), !state.admin);
    show($('#health-detail'), state.operator);
    show($('#queues'), state.operator);
    state.generation++;
    state.active = true;
    state.samples = [];
    state.throughput = null;
    state.lastQueues = null;
    poll('health', 5_000, refreshHealth);
    poll('org', 5_000, refreshOrganization);
    poll('failed', 5_000, refreshFailed);
    if (state.operator) poll('queues', 2_000, refreshQueues);
    if (state.admin) {
      poll('alerts', 5_000, refreshAlerts);
      poll('metrics', 10_000, refreshThroughput);
    } else {
      $('#alerts-count').textContent = '';
      show($('#alerts-table'), false);
      show($('#alerts-empty'), false);
    }
  }

  // ---------------------------------------------------------------- health

  function statusNode(status, tag = 'span') {
    const info = STATUS_TEXT[status] ?? { symbol: '?', text: status };
    return el(tag, { className: `badge st-${status}` }, el('span', { 'aria-hidden': 'true', text: info.symbol }), ` ${info.text}`);
  }

  async function refreshHealth() {
    const report = await api('GET', 'system/health', { accept: [503] });
    const head = $('#health-status');
    head.replaceChildren('Overall: ', statusNode(report.status, 'strong'));
    $('#health-time').textContent = `checked ${time(report.timestamp)}`;
    const { database, redis, workers } = report.checks;
    const items = [
      el('li', {}, el('span', { className: 'check-name', text: 'PostgreSQL' }), statusNode(database.status), ` ${Math.round(database.latencyMs)} ms`, database.error ? ` (${database.error})` : ''),
      el('li', {}, el('span', { className: 'check-name', text: 'Redis' }), statusNode(redis.status), ` ${Math.round(redis.latencyMs)} ms`, redis.error ? ` (${redis.error})` : ''),
      el(
        'li',
        {},
        el('span', { className: 'check-name', text: 'Workers' }),
        statusNode(workers.status),
        workers.stale?.length ? ` not consuming: ${workers.stale.join(', ')}` : ' every queue with waiting jobs is being consumed',
        workers.error ? ` (${workers.error})` : '',
      ),
    ];
    $('#health-checks').replaceChildren(...items);
    if (state.operator) {
      const detail = await api('GET', 'system/health/detailed', { accept: [503] });
      const pool = detail.database.pool;
      const rows = [
        ['Uptime', duration(detail.uptimeSeconds * 1000)],
        ['Event loop p99', `${number(detail.eventLoop.p99Ms)} ms`],
        ['Memory (RSS / heap used)', `${bytes(detail.memory.rss)} / ${bytes(detail.memory.heapUsed)}`],
        ['PostgreSQL pool', `${pool.total - pool.idle} busy, ${pool.idle} idle, ${pool.waiting} waiting (max ${pool.max})`],
        ['Versions', `node ${detail.versions.node} · app ${detail.versions.app} · PostgreSQL ${detail.versions.postgresql ?? '?'} · Redis ${detail.versions.redis ?? '?'}`],
      ];
      $('#health-detail').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
    }
  }

  // ---------------------------------------------------------------- the organization's figures

  async function refreshOrganization() {
    const stats = await api('GET', 'jobs/queue-stats?timeRange=1h');
    const org = stats.organization;
    const runs = Object.entries(org.runs.byStatus).filter(([, n]) => n > 0).map(([status, n]) => `${n} ${status}`);
    $('#org-runs').textContent = `Runs accepted in the last hour: ${org.runs.total}${runs.length ? ` (${runs.join(', ')})` : ''}`;
    const timing = (p) => `${duration(p.p50)} / ${duration(p.p95)}`;
    const rows = PIPELINE_ORDER.filter((stage) => org.stages[stage]).map((stage) => {
      const f = org.stages[stage];
      return el(
        'tr',
        { 'data-stage': stage },
        el('th', { scope: 'row', text: stage }),
        el('td', { 'data-figure': 'completed', text: f.completed }),
        el('td', { 'data-figure': 'failed', text: f.failed }),
        el('td', { 'data-figure': 'open', text: f.open }),
        el('td', { 'data-figure': 'retries', text: f.retries }),
        el('td', { text: timing(f.processingMs) }),
        el('td', { text: timing(f.waitMs) }),
      );
    });
    $('#org-table tbody').replaceChildren(...rows);
    show($('#org-table'), true);
  }

  // ---------------------------------------------------------------- queues (operators)

  async function refreshQueues() {
    const status = await api('GET', 'system/queue-status');
    const now = Date.now();
    const sample = { t: now, queues: {} };
    for (const queue of status.queues) {
      sample.queues[queue.name] = { waiting: queue.counts.waiting + queue.counts.prioritized, active: queue.counts.active, delayed: queue.counts.delayed, failed: queue.counts.failed };
      state.stageOfQueue[queue.name] = queue.stage;
    }
    state.samples.push(sample);
    while (state.samples.length && state.samples[0].t < now - DEPTH_WINDOW_MS) state.samples.shift();
    state.queueOrder = status.queues.map((q) => q.name);
    renderQueues(status.queues);
  }

  async function refreshThroughput() {
    const report = await api('GET', 'system/metrics?timeRange=15m');
    const byStage = {};
    for (const [stage, figures] of Object.entries(report.stages.byStage)) byStage[stage] = figures.series;
    state.throughput = byStage;
    state.throughputTo = Date.parse(report.generatedAt) || Date.now();
    if (state.lastQueues) renderQueues(state.lastQueues);
  }

  function queueCard(name) {
    const id = `q-${name.replace(/[^a-z0-9-]/gi, '')}`;
    let card = document.getElementById(id);
    if (card) return card;
    card = el(
      'article',
      { className: 'queue', id, 'aria-labelledby': `${id}-title`, 'data-queue': name },
      el('h3', { id: `${id}-title` }, el('span', { className: 'queue-name', text: name }), el('span', { className: 'flags' })),
      el('p', { className: 'stage hint' }),
      el('table', { className: 'counts' },
        el('caption', { className: 'visually-hidden', text: `${name}: jobs now` }),
        el('thead', {}, el('tr', {}, SERIES.map((s) => el('th', { scope: 'col' }, legendSwatch(s), s.label)))),
        el('tbody', {}, el('tr', {}, SERIES.map((s) => el('td', { 'data-count': s.key, text: '–' }))))),
      el('div', { className: 'concurrency' }),
      el('figure', { className: 'chart depth' }, el('figcaption', { text: 'Depth (jobs), sampled every 2 s, up to 5 minutes' }), el('div', { className: 'plot' })),
      el('figure', { className: 'chart throughput' }, el('figcaption', { text: 'Throughput (this organization), per minute' }), el('div', { className: 'plot' })),
    );
    $('#queue-grid').append(card);
    return card;
  }

  function legendSwatch(series) {
    return svg('svg', { width: 22, height: 10, 'aria-hidden': 'true', class: `swatch ${series.className}` },
      svg('line', { x1: 1, y1: 5, x2: 21, y2: 5, 'stroke-dasharray': series.dash, 'stroke-width': 2.5 }));
  }

  function renderQueues(queues) {
    state.lastQueues = queues;
    for (const queue of queues) {
      const card = queueCard(queue.name);
      const latest = state.samples.at(-1)?.queues[queue.name];
      for (const s of SERIES) card.querySelector(`[data-count="${s.key}"]`).textContent = latest ? String(latest[s.key]) : '–';
      card.querySelector('.stage').textContent = `stage: ${queue.stage}`;
      const flags = [];
      if (queue.paused) flags.push(el('span', { className: 'flag warn', text: 'paused' }));
      if (queue.rateLimit.limited) flags.push(el('span', { className: 'flag warn', text: `rate-limited ${duration(queue.rateLimit.ttlMs)}` }));
      if (queue.workersSeen === 0) flags.push(el('span', { className: 'flag warn', text: 'no workers' }));
      card.querySelector('.flags').replaceChildren(...flags);
      renderConcurrency(card.querySelector('.concurrency'), queue);
      card.querySelector('.depth .plot').replaceChildren(depthChart(queue.name));
      card.querySelector('.throughput .plot').replaceChildren(throughputChart(queue.name, queue.stage));
    }
  }

  function renderConcurrency(node, queue) {
    const { current, min, max } = queue.concurrency;
    const workers = queue.workersSeen;
    const meter = el('meter', { min: 0, max: Math.max(max, 1), value: current, low: min, 'aria-label': `Concurrency of ${queue.name}` });
    const last = queue.lastDecisions?.[0];
    node.replaceChildren(
      el('span', { className: 'label', text: 'Worker concurrency' }),
      meter,
      el('span', { className: 'figures', text: `${current} now · min ${min} · max ${max} · ${workers} worker${workers === 1 ? '' : 's'}` }),
      last ? el('span', { className: 'hint decision', text: `last change ${time(last.at)}: ${last.from} → ${last.to} (${last.reason})` }) : '',
    );
  }

  /** A nice upper bound for an axis: 1, 2, 5 × 10^n. */
  function niceMax(value) {
    if (value <= 4) return 4;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
    return value;
  }

  const W = 320;
  const H = 120;
  const PAD = { left: 34, right: 8, top: 8, bottom: 18 };

  function axes(yMax, xLabels) {
    const innerH = H - PAD.top - PAD.bottom;
    const nodes = [];
    for (const fraction of [0, 0.5, 1]) {
      const y = PAD.top + innerH * (1 - fraction);
      nodes.push(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'grid' }));
      nodes.push(svg('text', { x: PAD.left - 4, y: y + 3, 'text-anchor': 'end', class: 'tick' }, number(yMax * fraction)));
    }
    for (const [x, label, anchor] of xLabels) nodes.push(svg('text', { x, y: H - 4, 'text-anchor': anchor, class: 'tick' }, label));
    return nodes;
  }

  function depthChart(name) {
    const samples = state.samples;
    const now = samples.at(-1)?.t ?? Date.now();
    // The axis spans what this tab has sampled, in whole minutes: 1 to 5.
    const minutes = Math.min(DEPTH_WINDOW_MS / 60_000, Math.max(1, Math.ceil((now - (samples[0]?.t ?? now)) / 60_000)));
    const span = minutes * 60_000;
    const from = now - span;
    const latest = samples.at(-1)?.queues[name] ?? {};
    let peak = 0;
    for (const sample of samples) for (const s of SERIES) peak = Math.max(peak, sample.queues[name]?.[s.key] ?? 0);
    const yMax = niceMax(peak);
    const innerW = W - PAD.left - PAD.right;
    const innerH = H - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - from) / span) * innerW;
    const y = (v) => PAD.top + innerH * (1 - v / yMax);
    const summary = `${name} depth over the last ${minutes} minute${minutes === 1 ? '' : 's'} (${samples.length} samples). Now: ${SERIES.map((s) => `${s.label} ${latest[s.key] ?? 0}`).join(', ')}; peak ${peak}.`;
    const lines = SERIES.map((s) => {
      const points = samples.filter((p) => p.queues[name]).map((p) => `${x(p.t).toFixed(1)},${y(p.queues[name][s.key]).toFixed(1)}`);
      if (points.length === 1) points.unshift(`${(x(samples[0].t) - 2).toFixed(1)},${points[0].split(',')[1]}`);
      return svg('polyline', { points: points.join(' '), class: `series ${s.className}`, 'stroke-dasharray': s.dash, fill: 'none' });
    });
    return svg(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'plot-svg' },
      svg('title', {}, summary),
      ...axes(yMax, [[PAD.left, `-${minutes} min`, 'start'], [W - PAD.right, 'now', 'end']]),
      ...lines,
    );
  }

  function throughputChart(name, stage) {
    if (!state.admin) return el('p', { className: 'hint', text: 'Per-minute throughput is shown to organization admins.' });
    if (!state.throughput) return el('p', { className: 'hint', text: 'Loading…' });
    const series = state.throughput[stage] ?? [];
    const end = Math.floor(state.throughputTo / 60_000) * 60_000;
    const minutes = [];
    for (let i = THROUGHPUT_MINUTES - 1; i >= 0; i--) minutes.push(end - i * 60_000);
    const byMinute = new Map(series.map((m) => [Math.floor(Date.parse(m.minute) / 60_000) * 60_000, m]));
    const bars = minutes.map((t) => ({ t, completed: byMinute.get(t)?.completed ?? 0, failed: byMinute.get(t)?.failed ?? 0 }));
    const peak = Math.max(0, ...bars.map((b) => b.completed + b.failed));
    const yMax = niceMax(peak);
    const innerW = W - PAD.left - PAD.right;
    const innerH = H - PAD.top - PAD.bottom;
    const slot = innerW / bars.length;
    const h = (v) => (v / yMax) * innerH;
    const totalCompleted = bars.reduce((n, b) => n + b.completed, 0);
    const totalFailed = bars.reduce((n, b) => n + b.failed, 0);
    const last = bars.at(-1);
    const summary = `${name} throughput, last ${THROUGHPUT_MINUTES} minutes: ${totalCompleted} completed, ${totalFailed} failed; this minute ${last.completed} completed, ${last.failed} failed.`;
    const patternId = `hatch-${name.replace(/[^a-z0-9-]/gi, '')}`;
    const rects = bars.flatMap((b, i) => {
      const x0 = PAD.left + i * slot + 1;
      const width = Math.max(1, slot - 2);
      const base = PAD.top + innerH;
      const nodes = [];
      if (b.completed) nodes.push(svg('rect', { x: x0.toFixed(1), y: (base - h(b.completed)).toFixed(1), width: width.toFixed(1), height: h(b.completed).toFixed(1), class: 'bar-completed' }, svg('title', {}, `${timeFormat.format(new Date(b.t))}: ${b.completed} completed`)));
      if (b.failed) nodes.push(svg('rect', { x: x0.toFixed(1), y: (base - h(b.completed) - h(b.failed)).toFixed(1), width: width.toFixed(1), height: h(b.failed).toFixed(1), class: 'bar-failed', fill: `url(#${patternId})` }, svg('title', {}, `${timeFormat.format(new Date(b.t))}: ${b.failed} failed`)));
      return nodes;
    });
    const chart = svg(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'plot-svg' },
      svg('title', {}, summary),
      svg('defs', {}, svg('pattern', { id: patternId, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
        svg('rect', { width: 6, height: 6, class: 'hatch-bg' }), svg('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'hatch-line' }))),
      ...axes(yMax, [[PAD.left, `-${THROUGHPUT_MINUTES} min`, 'start'], [W - PAD.right, 'now', 'end']]),
      ...rects,
    );
    const legend = el('p', { className: 'legend' },
      el('span', { className: 'key key-completed', 'aria-hidden': 'true' }), ` completed (${totalCompleted}) `,
      el('span', { className: 'key key-failed', 'aria-hidden': 'true' }), ` failed, hatched (${totalFailed})`);
    return el('div', {}, chart, legend);
  }

  // ---------------------------------------------------------------- alerts

  async function refreshAlerts() {
    const { alerts, summary } = await api('GET', 'system/alerts?status=open&limit=50');
    $('#alerts-count').textContent = `(${summary.open} open, ${summary.unacknowledged} unacknowledged)`;
    const rows = alerts.map((alert) => {
      const messageId = `alert-msg-${alert.id}`;
      let ack;
      const who = (userId) => (userId === null ? 'someone in another organization' : userId === state.userId ? 'you' : `user ${userId.slice(0, 8)}…`);
      if (alert.acknowledged) {
        const later = (alert.acknowledgements ?? []).slice(1).map((a) => `${who(a.userId)} at ${time(a.at)}`);
        ack = el(
          'span',
          { className: 'acked' },
          el('span', { 'aria-hidden': 'true', text: '✓ ' }),
          `Acknowledged by ${who(alert.acknowledgedBy)} at ${time(alert.acknowledgedAt)}`,
          later.length ? el('span', { className: 'hint', text: ` (again by ${later.join(', ')})` }) : '',
        );
      } else if (!state.operator) {
        ack = el('span', { className: 'hint', text: 'Not acknowledged (system operators acknowledge alerts)' });
      } else {
        ack = el('button', { type: 'button', className: 'ack', 'data-alert-id': alert.id, 'aria-describedby': messageId, text: 'Acknowledge' });
        ack.addEventListener('click', () => acknowledge(alert.id, ack));
      }
      return el(
        'tr',
        { 'data-alert-id': alert.id, className: alert.acknowledged ? 'is-acked' : '' },
        el('td', {}, el('span', { className: `badge sev-${alert.severity}` }, el('span', { 'aria-hidden': 'true', text: alert.severity === 'critical' ? '✕ ' : '▲ ' }), alert.severity)),
        el('td', {}, el('strong', { text: alert.rule }), el('br'), el('span', { className: 'hint', text: alert.subject })),
        el('td', { id: messageId, text: alert.message }),
        el('td', { text: `${number(alert.value)} / ${number(alert.threshold)}` }),
        el('td', { text: `${time(alert.firstSeenAt)} (last ${time(alert.lastSeenAt)})` }),
        el('td', {}, ack),
      );
    });
    $('#alerts-table tbody').replaceChildren(...rows);
    show($('#alerts-table'), rows.length > 0);
    show($('#alerts-empty'), rows.length === 0);
  }

  async function acknowledge(alertId, button) {
    button.disabled = true;
    button.textContent = 'Acknowledging…';
    try {
      await api('POST', `system/alerts/${encodeURIComponent(alertId)}/acknowledge`);
      showError('alerts', null);
    } catch (error) {
      showError('alerts', error);
      button.disabled = false;
      button.textContent = 'Acknowledge';
      return;
    }
    await refreshAlerts().catch((error) => showError('alerts', error));
  }

  // ---------------------------------------------------------------- failed jobs

  async function refreshFailed() {
    const { jobs } = await api('GET', 'jobs/failed?limit=20');
    $('#failed-count').textContent = jobs.length ? `(${jobs.length} most recent)` : '';
    const rows = jobs.map((job) =>
      el(
        'tr',
        { 'data-job-id': job.jobId },
        el('td', { text: time(job.finishedAt) }),
        el('td', {}, el('strong', { text: job.stage }), el('br'), el('span', { className: 'hint', text: job.queue })),
        el('td', {}, el('code', { text: job.jobId })),
        el('td', {}, job.error ? [el('code', { className: 'err-code', text: job.error.code }), ' ', job.error.message] : '—'),
        el('td', { text: `${job.attempts} of ${job.maxAttempts}` }),
      ),
    );
    $('#failed-table tbody').replaceChildren(...rows);
    show($('#failed-table'), rows.length > 0);
    show($('#failed-empty'), rows.length === 0);
  }

  // ---------------------------------------------------------------- chat panel

  async function threadId() {
    const stored = sessionStorage.getItem(`${STORAGE.thread}:${state.creds.orgId}`);
    if (stored) return stored;
    const thread = await api('POST', 'threads', { body: { title: 'Dashboard test messages' } });
    sessionStorage.setItem(`${STORAGE.thread}:${state.creds.orgId}`, thread.id);
    return thread.id;
  }

  async function onChatSubmit(event) {
    event.preventDefault();
    const content = $('#chat-message').value;
    if (!content.trim()) {
      showError('chat', new ApiError(400, 'invalid_request', 'Write a message first', 'Send'));
      return;
    }
    const button = $('#chat-send');
    const generation = state.generation;
    button.disabled = true;
    showError('chat', null);
    $('#chat-reply').hidden = true;
    $('#chat-stages').replaceChildren();
    try {
      let accepted;
      try {
        accepted = await api('POST', `threads/${await threadId()}/messages/queued`, { body: { content } });
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        sessionStorage.removeItem(`${STORAGE.thread}:${state.creds.orgId}`);
        accepted = await api('POST', `threads/${await threadId()}/messages/queued`, { body: { content } });
      }
      const batchId = accepted.data.tracking.batchId;
      $('#chat-batch').textContent = `Batch ${batchId}${accepted.degraded ? ' (processed in-process: the queues are unreachable)' : ''}`;
      const jobs = Object.fromEntries(Object.keys(accepted.data.jobs).map((stage) => [stage, { status: 'pending', attempts: 0 }]));
      renderStages(jobs);
      // Live: the batch's event stream (stages and the reply's tokens as they come); polling if it cannot be had.
      const streamed = await followBatch(batchId, jobs, generation).catch(() => false);
      if (generation !== state.generation) return;
      const doc = streamed ? await api('GET', `batch/${encodeURIComponent(batchId)}/results`) : await pollUntilFinished(batchId, generation);
      if (!doc) return;
      showFinished(batchId, doc);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) showError('chat', error);
    } finally {
      button.disabled = false;
    }
  }

  /** How often a dropped event stream is opened again (each time with a new ticket) before polling takes over. */
  const STREAM_RECONNECTS = 3;

  /**
   * Follows the batch's event stream until its `end`: each stage's state and the reply's text as
   * they arrive. The stream is opened with a single-use stream ticket (an EventSource cannot send
   * the token, and a token must not go into a URL); after a drop it resumes after the last event
   * seen. Resolves true at the end, false when the stream could not be kept.
   */
  async function followBatch(batchId, jobs, generation) {
    const reply = $('#chat-reply');
    let text = '';
    let lastId = '';
    for (let attempt = 0; attempt <= STREAM_RECONNECTS; attempt++) {
      if (generation !== state.generation) return false;
      const { url } = await api('POST', 'stream-tickets', { body: { batchId } });
      const ended = await new Promise((resolve) => {
        const source = new EventSource(lastId ? `${url}&lastEventId=${encodeURIComponent(lastId)}` : url);
        const data = (event) => {
          lastId = event.lastEventId || lastId;
          try {
            return JSON.parse(event.data);
          } catch {
            return {};
          }
        };
        source.addEventListener('step', (event) => {
          const step = data(event);
          const status = step.status === 'started' ? 'active' : step.status;
          jobs[step.stage] = { status, attempts: step.attempt ?? jobs[step.stage]?.attempts ?? 1 };
          renderStages(jobs);
        });
        source.addEventListener('token', (event) => {
          text += data(event).text ?? '';
          reply.textContent = text;
          reply.hidden = false;
        });
        source.addEventListener('reset', (event) => {
          data(event);
          text = '';
          reply.textContent = '';
        });
        source.addEventListener('run', (event) => data(event));
        source.addEventListener('end', (event) => {
          data(event);
          source.close();
          resolve(true);
        });
        // A ticket is good for one connection: the browser's own reconnect would be refused, so it is done here.
        source.onerror = () => {
          source.close();
          resolve(false);
        };
      });
      if (ended) return true;
    }
    return false;
  }

  /** The batch document, read every 500 ms until the run has finished (no event stream). */
  async function pollUntilFinished(batchId, generation) {
    const started = Date.now();
    for (;;) {
      if (generation !== state.generation) return null;
      const doc = await api('GET', `batch/${encodeURIComponent(batchId)}/results`);
      renderStages(doc.jobs);
      if (doc.finishedAt) return doc;
      if (Date.now() - started > 120_000) throw new ApiError(0, 'timeout', 'No result after 2 minutes; the batch keeps running', `GET /batch/${batchId}/results`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  function showFinished(batchId, doc) {
    renderStages(doc.jobs);
    $('#chat-batch').textContent = `Batch ${batchId}: ${doc.status}, ${doc.completedJobs} of ${doc.totalJobs} stages completed in ${duration(Date.parse(doc.finishedAt) - Date.parse(doc.createdAt))}`;
    const reply = doc.results.openai?.choices?.[0]?.message?.content;
    if (reply) {
      $('#chat-reply').textContent = reply;
      $('#chat-reply').hidden = false;
    }
    if (doc.errors?.length) showError('chat', new ApiError(200, doc.errors[0].code, `${doc.errors.map((e) => `${e.stage}: ${e.code} — ${e.message}`).join('; ')}`, 'The run'));
  }

  function renderStages(jobs) {
    const rank = (stage) => (PIPELINE_ORDER.includes(stage) ? PIPELINE_ORDER.indexOf(stage) : PIPELINE_ORDER.length);
    const entries = Object.entries(jobs).sort(([a], [b]) => rank(a) - rank(b));
    const items = entries.map(([stage, job]) => {
      const status = job.status ?? 'pending';
      const attempts = job.attempts > 1 ? ` (attempt ${job.attempts})` : '';
      return el('li', { className: `step step-${status}`, 'data-stage': stage, 'data-status': status },
        el('span', { className: 'step-symbol', 'aria-hidden': 'true', text: STEP_SYMBOL[status] ?? '·' }),
        el('span', { className: 'step-name', text: stage }),
        el('span', { className: 'step-status', text: `${status}${attempts}` }));
    });
    $('#chat-stages').replaceChildren(...items);
  }

  // ---------------------------------------------------------------- start

  function start() {
    $('#sign-in-form').addEventListener('submit', onSignInSubmit);
    $('#chat-form').addEventListener('submit', onChatSubmit);
    $('#sign-out').addEventListener('click', () => signOut('Signed out.'));
    const params = new URLSearchParams(location.search);
    const bullBoard = params.get('bullBoard');
    if (bullBoard === 'forbidden') state.startNotice = 'Bull Board is for system operators only.';
    else if (bullBoard === 'signin') state.startNotice = 'Bull Board needs a sign-in as a system operator: sign in here, then follow the Bull Board link.';
    setNotice(state.startNotice);
    if (bullBoard) history.replaceState(null, '', location.pathname);
    const token = sessionStorage.getItem(STORAGE.token);
    const orgId = sessionStorage.getItem(STORAGE.orgId);
    if (token && orgId) {
      $('#org').value = orgId;
      signIn(token, orgId).then(enterBoard, (error) => {
        state.creds = null;
        sessionStorage.removeItem(STORAGE.token);
        setNotice(`Signed out: ${describe(error)}`);
      });
    } else if (orgId) {
      $('#org').value = orgId;
    }
  }

  start();
})();
