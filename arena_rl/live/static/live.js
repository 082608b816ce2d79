// arena_rl live view: reads the server's Server-Sent Events stream and draws it.
//
// Every message is aggregated into plain arrays as it arrives; charts, feeds and the header are
// redrawn from those arrays at most every 250 ms, and less often when a redraw is costly (the
// page keeps its drawing to a few per cent of one core: the run it shows may share this
// machine), so thousands of messages a second cost only their parsing. Message strings are only ever written with textContent / attributes, never as
// HTML.
(() => {
  "use strict";

  const REDRAW_MS = 250;
  const DRAW_SHARE = 0.02;         // of the time, at most, spent redrawing (paint comes on top)
  const FEED_CAP = 200;            // entries kept in each feed's DOM
  const FEED_KEEP_NEWEST = 60;     // of which the newest, whatever their kind (older: notable first)
  const REASON_TEXT_MAX = 2000;    // characters of one rationale kept in the DOM
  const RETRY_MS = 3000;           // restart after the browser gave up reconnecting
  const CONTROL_COLOR = "#8b919a";
  const PALETTE = [
    "#1f6fd1", "#e8590c", "#2f9e44", "#c2255c", "#7048e8",
    "#0c8599", "#b08800", "#5c3d2e", "#d6336c", "#495057",
  ];
  const SOURCE_LABEL = { tournament: "live tournament", served: "served experiment", replay: "replay" };

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };

  // ---- hooks for automated tests ------------------------------------------------------
  const live = { messages: 0, run: null, points: {}, ended: false, dropped: 0 };
  window.arenaLive = live;

  // ---- state --------------------------------------------------------------------------
  let S = null;          // everything derived from the current run's messages
  let lastId = -1;       // the last SSE id handled (to skip a duplicate after a reconnect)
  const dirty = { charts: false, header: true, board: false, feeds: false };

  function freshState(run) {
    const arms = run ? run.arms.slice() : [];
    const nA = arms.length;
    const grid = (names) => Object.fromEntries(names.map((n) => [n, {
      sum: arms.map(() => []), cnt: arms.map(() => []),
    }]));
    return {
      run,
      arms,
      armIndex: new Map(arms.map((a, i) => [a, i])),
      control: run ? run.control : null,
      days: run ? Math.max(1, Number(run.days) || 1) : 1,
      metrics: run ? run.metrics.slice() : [],
      knobs: run ? run.knobs.slice() : [],
      maxDay: -1,                                         // highest day of any message
      obj: { sum: arms.map(() => []), cnt: arms.map(() => []) },
      runSums: new Map(),                                 // tournament -> Float64Array per arm
      met: grid(run ? run.metrics : []),
      knob: grid(run ? run.knobs : []),
      daysSeen: new Map(),                                // tournament -> Set of days
      daysDone: 0,
      daysComplete: 0,                                    // tournaments that reached the horizon
      finished: new Set(),                                // tournaments with a result
      progress: null,
      leaderboard: null,
      usage: {},                                          // agent -> {tokens, calls}
      counts: { applied: 0, clamped: 0, rejected: 0, tripped: 0, recovered: 0 },
      pendingGuard: [],
      pendingReasons: [],
      reasonStats: new Map(),                             // agent + text -> {count}
      reasonEls: new Map(),                               // agent + text -> element in the feed
      dropped: 0,
      ended: false,
      end: null,
      nArms: nA,
    };
  }

  // ---- charts -------------------------------------------------------------------------
  let charts = [];       // {u, el, kind, name, height}
  let chartKey = "";     // the run layout the charts were built for
  let armColors = {};
  let hidden = new Set(); // arms toggled off in the legend
  let hoverIdx = null;

  function colorOf(arm) {
    return armColors[arm] || CONTROL_COLOR;
  }

  function heights() {
    const vh = window.innerHeight || 1000;
    const clamp = (lo, v, hi) => Math.max(lo, Math.min(hi, Math.round(v)));
    return {
      objective: clamp(170, vh * 0.25, 360),
      metric: clamp(100, vh * 0.145, 220),
      knob: clamp(80, vh * 0.105, 160),
    };
  }

  function humanMetric(name) {
    const s = String(name).replace(/_/g, " ").toLowerCase().replace(/\bxp\b/g, "XP");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function humanKnob(name) {
    const s = String(name).replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase()
      .replace(/\bxp\b/g, "XP");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function axisFont(size) {
    return `${size}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
  }

  function makeChart(container, kind, name, height, small) {
    const fontPx = small ? 10 : 11;
    const xRange = () => [0, Math.max(S.days - 1, S.maxDay, 1)];
    const series = [{ label: "day" }];
    S.arms.forEach((arm) => {
      const isControl = arm === S.control;
      series.push({
        label: arm,
        stroke: colorOf(arm),
        width: isControl ? (small ? 2.5 : 3) : (small ? 1.5 : 2),
        dash: isControl ? [7, 5] : undefined,
        points: { show: false },
        spanGaps: true,
        show: !hidden.has(arm),
      });
    });
    const axisStyle = {
      stroke: "#5f6670",
      font: axisFont(fontPx),
      grid: { stroke: "#eceef1", width: 1 },
      ticks: { stroke: "#d9dce1", width: 1, size: 4 },
    };
    const opts = {
      width: Math.max(120, container.clientWidth),
      height,
      padding: [6, 10, 0, 2],
      legend: { show: false },
      scales: {
        x: { time: false, range: xRange },
        y: kind === "lift" ? { range: (u, lo, hi) => padRange(Math.min(lo, 0), Math.max(hi, 0)) }
          : { range: (u, lo, hi) => padRange(lo, hi) },
      },
      axes: [
        Object.assign({}, axisStyle, {
          size: small ? 22 : 30,
          space: small ? 40 : 50,
          incrs: [1, 7, 14, 28, 56, 91, 182, 364, 728],
          values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : "")),
        }),
        Object.assign({}, axisStyle, {
          size: small ? 40 : 50,
          space: small ? 22 : 30,
          values: (u, vals) => vals.map(fmtAxis),
        }),
      ],
      cursor: {
        sync: { key: "arena-days", setSeries: false },
        drag: { x: false, y: false, setScale: false },
        y: false, // a horizontal line means nothing on the other (synced) charts
        points: { size: 6 },
      },
      series,
      hooks: kind === "objective" ? { setCursor: [(u) => { hoverIdx = u.cursor.idx; renderLegendValues(); }] } : {},
    };
    const u = new uPlot(opts, emptyData(), container);
    return { u, el: container, kind, name, small };
  }

  function padRange(lo, hi) {
    if (lo == null || hi == null || !Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
    if (lo === hi) {
      const d = Math.abs(lo) * 0.1 || 1;
      return [lo - d, hi + d];
    }
    const d = (hi - lo) * 0.06;
    return [lo - d, hi + d];
  }

  function emptyData() {
    return [[], ...S.arms.map(() => [])];
  }

  function buildCharts() {
    const key = JSON.stringify([S.arms, S.control, S.metrics, S.knobs]);
    if (key === chartKey && charts.length) return; // same layout: keep the charts, reset data
    destroyCharts();
    chartKey = key;
    armColors = {};
    let p = 0;
    S.arms.forEach((arm) => {
      armColors[arm] = arm === S.control ? CONTROL_COLOR : PALETTE[p++ % PALETTE.length];
    });
    hidden = new Set();
    buildLegend();
    const h = heights();
    charts.push(makeChart($("chart-objective"), "objective", null, h.objective, false));
    charts.push(makeChart($("chart-lift"), "lift", null, h.objective, false));
    const small = (where, cls, kind, name, label, height) => {  // a metric's or a knob's chart
      const fig = el("figure", cls);
      const cap = el("figcaption", null, label);
      cap.title = name;
      const box = el("div", "chart");
      fig.append(cap, box);
      $(where).append(fig);
      charts.push(makeChart(box, kind, name, height, true));
    };
    S.metrics.forEach((m) => small("metric-charts", "panel chart-panel", "metric", m, humanMetric(m), h.metric));
    S.knobs.forEach((k) => small("knob-charts", "panel chart-panel knob", "knob", k, humanKnob(k), h.knob));
    // the panels' widths are known only once they are in the page
    requestAnimationFrame(resizeCharts);
  }

  function destroyCharts() {
    charts.forEach((c) => c.u.destroy());
    charts = [];
    chartKey = "";
    $("metric-charts").replaceChildren();
    $("knob-charts").replaceChildren();
    $("chart-objective").replaceChildren();
    $("chart-lift").replaceChildren();
    $("legend").replaceChildren();
  }

  // Chart heights that fill the charts column without scrolling (wide windows), within limits.
  function fitHeights() {
    const fallback = heights();
    const box = $("charts");
    if (!charts.length || window.matchMedia("(max-width: 1100px)").matches || !box.lastElementChild) return fallback;
    const rowsOf = (sel) => new Set(Array.from(document.querySelectorAll(sel), (f) => f.offsetTop)).size;
    const mRows = rowsOf("#metric-charts > figure"), kRows = rowsOf("#knob-charts > figure");
    const cur = { objective: 0, metric: 0, knob: 0 };
    charts.forEach((c) => { cur[c.kind === "lift" ? "objective" : c.kind] = c.u.height; });
    const top = box.getBoundingClientRect().top;
    const content = box.lastElementChild.getBoundingClientRect().bottom - top + box.scrollTop + 20;
    const overhead = content - (cur.objective + mRows * cur.metric + kRows * cur.knob);
    const avail = box.clientHeight - overhead - 4;
    const W = { objective: 1.8, metric: 1, knob: 0.72 };
    const unit = avail / (W.objective + W.metric * mRows + W.knob * kRows);
    if (!Number.isFinite(unit) || unit <= 0) return fallback;
    const clamp = (lo, v, hi) => Math.max(lo, Math.min(hi, Math.floor(v)));
    return {
      objective: clamp(150, unit * W.objective, 420),
      metric: clamp(90, unit * W.metric, 240),
      knob: clamp(64, unit * W.knob, 170),
    };
  }

  // Balanced grid rows: as many columns as fit, then as few as keep the same number of rows
  // (6 metrics: 3 + 3, not 5 + 1).
  function balanceGrid(box, minWidth) {
    const n = box.childElementCount;
    if (!n) return;
    const fit = Math.max(1, Math.floor((box.clientWidth + 8) / (minWidth + 8)));
    const cols = Math.ceil(n / Math.ceil(n / fit));
    box.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  }

  function resizeCharts() {
    balanceGrid($("metric-charts"), 280);
    balanceGrid($("knob-charts"), 190);
    const h = fitHeights();
    charts.forEach((c) => {
      const width = Math.max(120, Math.floor(c.el.clientWidth));
      const height = c.kind === "metric" ? h.metric : c.kind === "knob" ? h.knob : h.objective;
      if (width !== c.u.width || height !== c.u.height) c.u.setSize({ width, height });
    });
  }

  let resizePending = false;
  window.addEventListener("resize", () => {
    if (resizePending) return;
    resizePending = true;
    requestAnimationFrame(() => { resizePending = false; resizeCharts(); });
  });

  function means(acc, a, n) {
    const sum = acc.sum[a], cnt = acc.cnt[a], out = new Array(n);
    for (let d = 0; d < n; d++) out[d] = cnt[d] ? sum[d] / cnt[d] : null;
    return out;
  }

  let lastObjective = null; // [x, ...arms] of the objective chart, for the legend

  function updateCharts() {
    if (!S.run || !charts.length) return;
    const n = S.maxDay + 1;
    const x = new Array(n);
    for (let d = 0; d < n; d++) x[d] = d;
    const nA = S.arms.length;
    const obj = [];
    for (let a = 0; a < nA; a++) obj.push(means(S.obj, a, n));
    const ctrl = S.armIndex.get(S.control);
    const lift = obj.map((ys) => ys.map((y, d) => {
      const c = ctrl === undefined ? null : obj[ctrl][d];
      return y == null || c == null ? null : y - c;
    }));
    lastObjective = [x, ...obj];
    for (const c of charts) {
      let data;
      if (c.kind === "objective") data = lastObjective;
      else if (c.kind === "lift") data = [x, ...lift];
      else {
        const acc = (c.kind === "metric" ? S.met : S.knob)[c.name];
        data = [x];
        for (let a = 0; a < nA; a++) data.push(means(acc, a, n));
      }
      c.u.setData(data, true);
    }
    renderLegendValues();
  }

  // ---- the arms' legend (shared by every chart) --------------------------------------
  let legendItems = [];

  function buildLegend() {
    const box = $("legend");
    box.replaceChildren();
    legendItems = [];
    const lead = el("span", "legend-lead", "Arms");
    lead.id = "legend-lead";
    lead.title = "Each arm's cumulative objective per enrolled user (mean over tournaments) and, in brackets, its lift over control. Hover a chart for another day; click an arm to hide it.";
    box.append(lead);
    S.arms.forEach((arm, i) => {
      const isControl = arm === S.control;
      const item = el("button", "leg-item" + (isControl ? " control" : ""));
      item.type = "button";
      item.dataset.arm = arm;
      item.title = "Click to hide or show this arm in every chart";
      const sw = el("span", "swatch");
      sw.style.setProperty("--c", colorOf(arm));
      const name = el("span", "leg-name", arm);
      const val = el("span", "leg-value", "");
      item.append(sw, name, val);
      item.addEventListener("click", () => toggleArm(arm, i + 1, item));
      box.append(item);
      legendItems.push({ arm, val });
    });
  }

  function toggleArm(arm, seriesIdx, item) {
    const show = hidden.has(arm);
    if (show) hidden.delete(arm); else hidden.add(arm);
    item.classList.toggle("off", !show);
    charts.forEach((c) => c.u.setSeries(seriesIdx, { show }));
  }

  function renderLegendValues() {
    if (!lastObjective || !S || !S.run) return;
    const x = lastObjective[0];
    if (!x.length) {
      legendItems.forEach((it) => { it.val.textContent = ""; });
      const lead = $("legend-lead");
      if (lead) lead.textContent = "Arms";
      return;
    }
    const idx = hoverIdx != null && hoverIdx >= 0 && hoverIdx < x.length ? hoverIdx : x.length - 1;
    const ctrl = S.armIndex.get(S.control);
    const c = ctrl === undefined ? null : lastObjective[ctrl + 1][idx];
    legendItems.forEach((it, a) => {
      const v = lastObjective[a + 1][idx];
      let t = fmt(v);
      if (a !== ctrl && v != null && c != null) {
        const d = v - c;
        t += ` (${d >= 0 ? "+" : "−"}${fmt(Math.abs(d))})`;
      }
      it.val.textContent = t;
    });
    const lead = $("legend-lead");
    if (lead) lead.textContent = `Day ${x[idx]}${hoverIdx == null ? "" : " (hover)"} · ± vs control`;
  }

  // ---- messages -----------------------------------------------------------------------
  function onMessage(ev) {
    // one event is a JSON array of messages: all the server had new when it looked
    let batch;
    try { batch = JSON.parse(ev.data); } catch (e) { return; }
    if (!Array.isArray(batch)) batch = [batch];
    // An event without an id field (only a `dropped` notice) carries the previous event's id,
    // so only an id below the last one is a batch this page already had.
    const id = ev.lastEventId === "" ? NaN : Number(ev.lastEventId);
    if (Number.isFinite(id)) {
      const restart = batch.length && batch[0] && batch[0].type === "run";
      if (!restart && id < lastId) return;
      lastId = id;
    }
    for (const m of batch) if (m && typeof m === "object") handle(m);
  }

  function handle(m) {
    if (m.type === "run") {
      startRun(m);
      live.messages = 1;
      return;
    }
    live.messages++;
    if (!S) S = freshState(null);
    if (Number.isInteger(m.day) && m.day > S.maxDay && m.type !== "progress") S.maxDay = m.day;
    switch (m.type) {
      case "day": onDay(m); break;
      case "decision": onDecision(m); break;
      case "persona": onPersona(m); break;
      case "guardrail": onGuardrail(m); break;
      case "breaker": onBreaker(m); break;
      case "tournament": onTournament(m); break;
      case "progress": S.progress = m; dirty.header = true; break;
      case "leaderboard": S.leaderboard = Array.isArray(m.rows) ? m.rows : []; dirty.board = true; break;
      case "dropped": {
        const n = Number(m.count);
        if (Number.isFinite(n) && n > 0) { S.dropped += n; live.dropped = S.dropped; }
        dirty.header = true;
        break;
      }
      case "end": onEnd(m); break;
      default: break;
    }
  }

  function startRun(run) {
    S = freshState(run);
    live.run = run;
    live.points = Object.fromEntries(S.arms.map((a) => [a, 0]));
    live.ended = false;
    live.dropped = 0;
    hoverIdx = null;
    lastObjective = null;
    clearFeeds();
    buildCharts();
    setupRunHeader();
    dirty.charts = dirty.header = dirty.board = dirty.feeds = true;
  }

  function grow(arr, d) {
    while (arr.length <= d) arr.push(0);
  }

  function onDay(m) {
    if (!S.run) return;
    const a = S.armIndex.get(m.arm);
    const d = m.day;
    if (a === undefined || !Number.isInteger(d) || d < 0) return;
    const t = m.tournament;
    let rs = S.runSums.get(t);
    if (!rs) { rs = new Float64Array(S.nArms); S.runSums.set(t, rs); }
    if (typeof m.value === "number" && Number.isFinite(m.value)) rs[a] += m.value;
    const os = S.obj.sum[a], oc = S.obj.cnt[a];
    grow(os, d); grow(oc, d);
    os[d] += rs[a];
    if (oc[d]++ === 0) live.points[m.arm] = (live.points[m.arm] || 0) + 1;
    addAll(S.met, m.metrics, a, d);
    addAll(S.knob, m.economy, a, d);
    let seen = S.daysSeen.get(t);
    if (!seen) { seen = new Set(); S.daysSeen.set(t, seen); }
    if (!seen.has(d)) {
      seen.add(d);
      S.daysDone++;
      if (seen.size === S.days) S.daysComplete++;
    }
    dirty.charts = dirty.header = true;
  }

  function addAll(grid, values, a, d) {
    if (!values || typeof values !== "object") return;
    for (const name in grid) {
      const v = values[name];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      const g = grid[name], sum = g.sum[a], cnt = g.cnt[a];
      grow(sum, d); grow(cnt, d);
      sum[d] += v;
      cnt[d]++;
    }
  }

  function onDecision(m) {
    if (typeof m.reasoning !== "string" || !m.reasoning.trim()) return;
    S.pendingReasons.push(m);
    if (S.pendingReasons.length > 4 * FEED_CAP) S.pendingReasons.splice(0, S.pendingReasons.length - 2 * FEED_CAP);
    dirty.feeds = true;
  }

  function onPersona(m) {  // an LLM persona user's day: its reason joins its arm's reasons
    if (typeof m.reason !== "string" || !m.reason.trim()) return;
    onDecision({ ...m, agent: String(m.arm), reasoning: `${m.user}: ${m.reason}` });
  }

  function onGuardrail(m) {
    if (m.outcome in S.counts) S.counts[m.outcome]++;
    pushGuard(m);
    // the served experiment sees no decisions, only updates: their reasoning is the agent's
    if (S.run && S.run.source === "served") onDecision({ ...m, agent: m.arm });
  }

  function onBreaker(m) {
    if (m.state === "tripped") S.counts.tripped++;
    else if (m.state === "recovered") S.counts.recovered++;
    pushGuard(m);
  }

  function pushGuard(m) {
    S.pendingGuard.push(m);
    if (S.pendingGuard.length > 8 * FEED_CAP) {
      // keep what the feed would keep anyway: the newest, and the notable ones
      const keep = S.pendingGuard.filter((g, i, all) => i >= all.length - FEED_CAP || g.type === "breaker" || g.outcome === "rejected");
      S.pendingGuard = keep.slice(-4 * FEED_CAP);
    }
    dirty.feeds = dirty.header = true;
  }

  function onTournament(m) {
    S.finished.add(m.tournament);
    const usage = m.usage && typeof m.usage === "object" ? m.usage : {};
    for (const agent of Object.keys(usage)) {
      const u = usage[agent] || {};
      const acc = S.usage[agent] || (S.usage[agent] = { tokens: 0, calls: 0, prompt: 0, completion: 0 });
      const p = Number(u.prompt_tokens) || 0, c = Number(u.completion_tokens) || 0;
      acc.prompt += p;
      acc.completion += c;
      acc.tokens += p + c;
      acc.calls += Number(u.calls) || 0;
    }
    dirty.board = dirty.header = true;
  }

  function onEnd(m) {
    S.ended = true;
    S.end = m;
    live.ended = true;
    closeSource(); // the run is over: no reconnecting
    setConn("ended");
    dirty.header = dirty.charts = dirty.feeds = dirty.board = true;
    tick(); // show the final state now
  }

  // ---- feeds --------------------------------------------------------------------------
  function clearFeeds() {
    $("guardrail-feed").replaceChildren();
    $("reasons-feed").replaceChildren();
    const filter = $("reason-filter");
    const keep = filter.value;
    filter.replaceChildren(new Option("all agents", ""));
    (S.run ? S.run.agents : []).forEach((a) => filter.append(new Option(a, a)));
    filter.value = S.run && S.run.agents.includes(keep) ? keep : "";
  }

  function armChip(arm) {
    const chip = el("span", "arm-chip", arm);
    chip.style.setProperty("--c", colorOf(arm));
    return chip;
  }

  function where(m) {
    return el("span", "where", `T${m.tournament} · day ${m.day}`);
  }

  function clampSummary(detail) {
    try {
      const o = JSON.parse(detail);
      if (!o || typeof o !== "object" || Array.isArray(o)) return null;
      const parts = [];
      for (const k of Object.keys(o)) {
        const v = o[k];
        if (v && typeof v === "object" && v.clamped) parts.push(`${k} ${fmt(v.requested)}→${fmt(v.applied)}`);
      }
      return parts.length ? "asked → allowed: " + parts.join(", ") : null;
    } catch (e) {
      return null;
    }
  }

  function guardItem(m) {
    const isBreaker = m.type === "breaker";
    const outcome = String(isBreaker ? m.state : m.outcome);
    const code = !isBreaker && m.code != null ? String(m.code) : "";
    const item = el("div", `feed-item k-${isBreaker ? "breaker" : "guardrail"} o-${outcome}`);
    item.dataset.kind = isBreaker ? "breaker" : "guardrail";
    item.dataset.outcome = outcome;
    item.dataset.code = code;
    item.dataset.arm = String(m.arm);
    item.dataset.tournament = String(m.tournament);
    item.dataset.day = String(m.day);
    const line = el("div", "line");
    line.append(el("span", "tag", isBreaker ? `breaker ${outcome}` : outcome), armChip(String(m.arm)), where(m));
    if (code) line.append(el("span", "code", code));
    item.append(line);
    let detail = m.detail == null ? "" : String(m.detail);
    if (detail && !(outcome === "applied" && detail === "accepted")) {
      const shown = outcome === "clamped" ? clampSummary(detail) || detail : detail;
      const d = el("div", "detail", shown.length > 400 ? shown.slice(0, 400) + "…" : shown);
      d.title = detail.length > 4000 ? detail.slice(0, 4000) + "…" : detail;
      item.append(d);
    }
    return item;
  }

  function reasonKey(m) {
    return `${m.agent}\u0000${m.reasoning}`;
  }

  function reasonItem(m, stat) {
    const raw = m.reasoning;
    const isLLM = raw.startsWith("[llm]");
    const text = isLLM ? raw.slice(5).trimStart() : raw;
    const item = el("div", "reason-item" + (isLLM ? " llm" : ""));
    item.dataset.agent = String(m.agent);
    const meta = el("div", "meta");
    meta.append(armChip(String(m.agent)));
    if (isLLM) meta.append(el("span", "llm-badge", "LLM"));
    const w = where(m);
    w.classList.add("r-where");
    meta.append(w);
    meta.append(el("span", "action", actionLabel(m)));
    if (m.type === "persona") {
      item.classList.add("persona");
      item.dataset.persona = String(m.user);
      meta.append(el("span", "llm-badge", m.source === "twin" ? "twin" : "persona"));
    }
    const tokens = Number(m.tokens);
    if (m.tokens != null && Number.isFinite(tokens) && tokens > 0) {
      const t = el("span", "tokens", `${Math.round(tokens)} tokens`);
      t.title = "Language-model tokens this decision used (prompt + answer; 0 when cached)";
      meta.append(t);
    }
    const count = el("span", "repeat", stat.count > 1 ? `×${stat.count}` : "");
    count.title = "How many times this agent gave this reason";
    meta.append(count);
    const body = el("div", "text", text.length > REASON_TEXT_MAX ? text.slice(0, REASON_TEXT_MAX) + "…" : text);
    item.append(meta, body);
    item.addEventListener("click", () => item.classList.toggle("expanded"));
    const f = $("reason-filter").value;
    if (f && f !== m.agent) item.hidden = true;
    return item;
  }

  function actionLabel(m) {
    if (m.type === "persona") {
      const did = m.opened ? `${m.scans} scans, ${m.feedback} feedback, ${m.reports} reports` : "stayed away";
      return did + (m.quit ? ", quit" : "");
    }
    return m.outcome ? outcomeText(m) : actionText(m.action);
  }

  function outcomeText(m) {  // an update's reasoning (the served experiment): what became of it
    return m.code ? `${m.outcome} ${m.code}` : String(m.outcome);
  }

  function actionText(action) {
    if (action == null || typeof action !== "object") return "hold";
    const n = Object.keys(action).length;
    return n === 1 ? "changes 1 knob" : `changes ${n} knobs`;
  }

  function updateReasonItem(item, m, stat) {
    const w = item.querySelector(".r-where");
    if (w) w.textContent = `T${m.tournament} · day ${m.day}`;
    const a = item.querySelector(".action");
    if (a) a.textContent = actionLabel(m);
    const c = item.querySelector(".repeat");
    if (c) c.textContent = stat.count > 1 ? `×${stat.count}` : "";
  }

  // Over the cap, evict the oldest low-priority entries first, then the oldest of any; the
  // newest `keep` entries always stay, whatever their kind.
  function trimFeed(list, cap, keep, tiers) {
    let excess = list.childElementCount - cap;
    if (excess <= 0) return;
    const newest = list.children[Math.min(keep, list.childElementCount) - 1] || null;
    for (const low of tiers) {
      for (let node = list.lastElementChild; node && node !== newest && excess > 0;) {
        const prev = node.previousElementSibling;
        if (low(node)) { node.remove(); excess--; }
        node = prev;
      }
      if (excess <= 0) return;
    }
    while (excess-- > 0 && list.lastElementChild) list.lastElementChild.remove();
  }

  function flushFeeds() {
    if (!S) return;
    // guardrails and breakers: newest first
    const g = S.pendingGuard;
    if (g.length) {
      S.pendingGuard = [];
      const show = g.length > FEED_CAP ? g.slice(-FEED_CAP) : g;
      const frag = document.createDocumentFragment();
      for (let i = show.length - 1; i >= 0; i--) frag.append(guardItem(show[i]));
      const list = $("guardrail-feed");
      list.prepend(frag);
      trimFeed(list, FEED_CAP, FEED_KEEP_NEWEST, [
        (n) => n.dataset.outcome === "applied",
        (n) => n.dataset.outcome === "clamped",
        (n) => n.dataset.outcome === "recovered",
      ]);
    }
    // reasons: one entry per (agent, text), moved to the top when it is given again
    const r = S.pendingReasons;
    if (r.length) {
      S.pendingReasons = [];
      const latest = new Map();
      for (const m of r) {
        const key = reasonKey(m);
        let stat = S.reasonStats.get(key);
        if (!stat) {
          if (S.reasonStats.size > 20000) S.reasonStats.clear();
          stat = { count: 0 };
          S.reasonStats.set(key, stat);
        }
        stat.count++;
        latest.delete(key);
        latest.set(key, m);
      }
      let entries = Array.from(latest);
      if (entries.length > FEED_CAP) entries = entries.slice(-FEED_CAP);
      const list = $("reasons-feed");
      for (const [key, m] of entries) {
        const stat = S.reasonStats.get(key);
        let item = S.reasonEls.get(key);
        if (item && item.isConnected) updateReasonItem(item, m, stat);
        else {
          item = reasonItem(m, stat);
          S.reasonEls.set(key, item);
        }
        list.prepend(item);
      }
      trimFeed(list, FEED_CAP, FEED_KEEP_NEWEST, [(n) => !n.classList.contains("llm")]);
      if (S.reasonEls.size > 4 * FEED_CAP) {
        for (const [k, node] of S.reasonEls) if (!node.isConnected) S.reasonEls.delete(k);
      }
    }
  }

  // ---- header, leaderboard ------------------------------------------------------------
  function setupRunHeader() {
    const run = S.run;
    $("title").textContent = run.title ? String(run.title) : "arena_rl live";
    $("title").title = $("title").textContent;
    document.title = `${run.title ? String(run.title) : "arena_rl"} · live`;
    const badge = $("source-badge");
    badge.textContent = SOURCE_LABEL[run.source] || String(run.source);
    badge.dataset.source = String(run.source);
    badge.hidden = false;
    $("end-status").hidden = true;
    const link = $("mlflow-link");
    link.hidden = true;
    link.removeAttribute("href");
    const replay = run.source === "replay";
    $("replay-controls").hidden = !replay;
    if (replay) {
      const seek = $("seek");
      seek.max = String(S.days);
      if (!seeking) { seek.value = String(replayState.fromDay); $("seek-day").textContent = seek.value; }
      updatePauseButton();
    }
  }

  function renderHeader() {
    if (!S) return;
    const total = S.progress && Number.isFinite(Number(S.progress.total)) ? Number(S.progress.total)
      : S.run ? Number(S.run.tournaments) || 0 : 0;
    // without progress messages (a replay), a tournament is done once it reached the horizon
    const done = S.progress && Number.isFinite(Number(S.progress.done)) ? Number(S.progress.done)
      : Math.max(S.finished.size, S.daysComplete);
    const served = S.run && S.run.source === "served";
    $("progress").textContent = served ? "1 experiment" : `${done} / ${total}`;
    const failed = S.progress ? Number(S.progress.failed) || 0 : 0;
    const f = $("failed");
    f.hidden = failed <= 0;
    f.textContent = failed > 0 ? `${failed} failed` : "";
    const daysTotal = S.run && S.run.days ? total * S.days : 0;
    // a served experiment has no horizon: it has run so many days so far
    $("days-done").textContent = daysTotal ? `${S.daysDone} / ${daysTotal}` : String(S.daysDone);
    $("days-bar").style.width = `${daysTotal ? Math.min(100, (100 * S.daysDone) / daysTotal) : 0}%`;
    let eta = "—";
    if (S.ended) eta = "done";
    else if (S.progress && S.progress.eta_s != null) eta = fmtDuration(Number(S.progress.eta_s));
    const etaEl = $("eta");
    etaEl.textContent = eta;
    etaEl.title = S.progress && S.progress.elapsed_s != null ? `elapsed ${fmtDuration(Number(S.progress.elapsed_s))}` : "";
    $("dropped").textContent = String(S.dropped);
    $("dropped-box").dataset.nonzero = String(S.dropped > 0);
    const c = S.counts;
    $("count-applied").textContent = String(c.applied);
    $("count-clamped").textContent = String(c.clamped);
    $("count-rejected").textContent = String(c.rejected);
    $("count-tripped").textContent = String(c.tripped);
    $("count-recovered").textContent = String(c.recovered);
    if (S.ended && S.end) {
      const st = $("end-status");
      st.hidden = false;
      st.textContent = String(S.end.status || "ended").toLowerCase();
      st.dataset.status = String(S.end.status || "");
      const ml = S.end.mlflow;
      const link = $("mlflow-link");
      if (ml && typeof ml === "object" && typeof ml.url === "string" && /^https?:\/\//i.test(ml.url)) {
        link.href = ml.url;
        link.textContent = "MLflow run ↗";
        link.title = ml.run_id ? `MLflow run ${ml.run_id}` : "";
        link.hidden = false;
      }
    }
    if (S.run && S.run.source === "replay") {
      if (!seeking && !replayState.paused) {
        const day = currentDay();
        $("seek").value = String(day);
        $("seek-day").textContent = String(day);
      }
      updatePauseButton();
    }
  }

  function renderLeaderboard() {
    const body = $("leaderboard").tBodies[0];
    const rows = S && S.leaderboard;
    const anyTokens = !!S && Object.values(S.usage).some((u) => u && u.tokens);
    $("leaderboard").classList.toggle("no-tokens", !anyTokens);  // a column only when used
    if (!rows || !rows.length) {
      const tr = el("tr", "placeholder");
      const replay = S && S.run && S.run.source === "replay";
      const td = el("td", null, replay ? "an event log holds days, not results: see the lines"
        : "no tournament results yet");
      td.colSpan = 6;
      tr.append(td);
      body.replaceChildren(tr);
      return;
    }
    const out = rows.map((row, i) => {
      const tr = el("tr");
      tr.dataset.agent = String(row.agent);
      const lo = row.lift_low, hi = row.lift_high;
      if (lo != null && lo > 0) tr.classList.add("better");
      else if (hi != null && hi < 0) tr.classList.add("worse");
      const agentTd = el("td", "agent");
      agentTd.append(armChip(String(row.agent)));
      const liftTd = el("td", "num lift");
      liftTd.append(el("span", "lift-mean", fmt(row.lift)));
      if (lo != null || hi != null) liftTd.append(el("span", "ci", ` [${fmt(lo)}, ${fmt(hi)}]`));
      else liftTd.title = "the 95% CI needs two tournaments or more";
      liftTd.title = liftTd.title || (lo != null && lo > 0 ? "better than control (CI above 0)"
        : hi != null && hi < 0 ? "worse than control (CI below 0)" : "not distinguishable from control yet");
      const u = S.usage[row.agent];
      const tokTd = el("td", "num", u && u.tokens ? fmtCount(u.tokens) : "—");
      if (u) tokTd.title = `${u.calls} calls · ${u.prompt} prompt + ${u.completion} completion tokens`;
      tr.append(el("td", "rank", i + 1), agentTd, el("td", "num", row.tournaments ?? "—"), liftTd,
        el("td", "num", fmt(row.regret)), tokTd);
      return tr;
    });
    body.replaceChildren(...out);
  }

  // ---- formatting ---------------------------------------------------------------------
  function fmt(v) {
    if (v == null || typeof v !== "number" || !Number.isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a >= 1e5) return v.toExponential(2);
    if (a >= 100) return v.toFixed(1);
    if (a >= 1 || a === 0) return v.toFixed(2);
    return v.toPrecision(3);
  }

  function fmtAxis(v) {
    if (v == null) return "";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    return String(+v.toPrecision(4));
  }

  function fmtCount(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(2) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n));
  }

  function fmtDuration(s) {
    if (!Number.isFinite(s) || s < 0) return "—";
    s = Math.round(s);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60), sec = s % 60;
    if (m < 60) return `${m}m ${String(sec).padStart(2, "0")}s`;
    const h = Math.floor(m / 60);
    return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  }

  // ---- the connection -----------------------------------------------------------------
  let source = null;
  let retryTimer = null;
  let currentQuery = location.search || "";

  function setConn(state) {
    const labels = {
      connecting: "connecting…", live: "live", retrying: "disconnected — retrying",
      ended: "ended", paused: "paused",
    };
    $("conn").dataset.state = state;
    $("conn-text").textContent = labels[state] || state;
  }

  function closeSource() {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    if (source) { source.close(); source = null; }
  }

  function open(query) {
    closeSource();
    currentQuery = query;
    lastId = -1;
    const es = new EventSource("stream" + query);
    source = es;
    setConn("connecting");
    es.onopen = () => { if (source === es) setConn("live"); };
    es.onmessage = (ev) => { if (source === es) onMessage(ev); };
    es.onerror = () => {
      if (source !== es || (S && S.ended)) return;
      setConn("retrying");
      if (es.readyState === EventSource.CLOSED) {
        // the browser gave up (e.g. an error status): start over, the server sends it all again
        source = null;
        es.close();
        retryTimer = setTimeout(() => { retryTimer = null; resetView(); open(currentQuery); }, RETRY_MS);
      }
      // otherwise EventSource retries by itself, sending Last-Event-ID
    };
  }

  // Empty the page (the next run message fills it again).
  function resetView() {
    const run = S ? S.run : null;
    S = freshState(run);
    live.messages = 0;
    live.ended = false;
    live.dropped = 0;
    live.points = Object.fromEntries(S.arms.map((a) => [a, 0]));
    hoverIdx = null;
    lastObjective = null;
    if (run) clearFeeds();
    else { $("guardrail-feed").replaceChildren(); $("reasons-feed").replaceChildren(); }
    charts.forEach((c) => c.u.setData(emptyData(), true));
    $("end-status").hidden = true;
    $("mlflow-link").hidden = true;
    dirty.charts = dirty.header = dirty.board = dirty.feeds = true;
    tick();
  }

  // ---- replay controls ----------------------------------------------------------------
  const replayState = { paused: false, pausedDay: 0, fromDay: 0, openedAt: -Infinity };
  let seeking = false;

  function replayQuery(fromDay) {
    const p = new URLSearchParams();
    p.set("from_day", String(fromDay));
    const speed = $("speed").value;
    if (speed) p.set("speed", speed);
    return "?" + p.toString();
  }

  function replayFrom(day) {
    // one seek can fire `change` twice (a test's fill, then its own change): reopen once
    if (!replayState.paused && day === replayState.fromDay && source && performance.now() - replayState.openedAt < 500) return;
    replayState.paused = false;
    replayState.fromDay = day;
    replayState.openedAt = performance.now();
    resetView();
    open(replayQuery(day));
    updatePauseButton();
  }

  function updatePauseButton() {
    const b = $("pause");
    if (S && S.ended && !replayState.paused) { b.textContent = "↻ Replay again"; b.dataset.mode = "restart"; }
    else if (replayState.paused) { b.textContent = "▶ Resume"; b.dataset.mode = "resume"; }
    else { b.textContent = "⏸ Pause"; b.dataset.mode = "pause"; }
  }

  // Where the replay stands: the latest day received, and never before the day it started at
  // (a stream reopened at day D sends days before D first).
  function currentDay() {
    return Math.max(0, replayState.fromDay, S ? S.maxDay : 0);
  }

  $("pause").addEventListener("click", () => {
    const mode = $("pause").dataset.mode;
    if (mode === "restart") replayFrom(0);
    else if (mode === "resume") replayFrom(replayState.pausedDay);
    else {
      replayState.paused = true;
      replayState.pausedDay = currentDay();
      closeSource();
      setConn("paused");
      $("seek").value = String(replayState.pausedDay);
      $("seek-day").textContent = String(replayState.pausedDay);
      updatePauseButton();
    }
  });

  $("speed").addEventListener("change", () => {
    if (replayState.paused) return; // used when resumed
    if (S && S.ended) return;       // used by the next replay
    replayFrom(currentDay());
  });

  const seek = $("seek");
  seek.addEventListener("pointerdown", () => { seeking = true; });
  seek.addEventListener("input", () => { seeking = true; $("seek-day").textContent = seek.value; });
  seek.addEventListener("change", () => {
    seeking = false;
    replayFrom(Number(seek.value) || 0);
  });
  seek.addEventListener("blur", () => { seeking = false; });

  // ---- filters ------------------------------------------------------------------------
  $("hide-applied").addEventListener("change", (e) => {
    $("guardrail-feed").classList.toggle("hide-applied", e.target.checked);
  });

  $("reason-filter").addEventListener("change", (e) => {
    const agent = e.target.value;
    for (const item of $("reasons-feed").children) item.hidden = !!agent && item.dataset.agent !== agent;
  });

  // ---- the redraw loop ----------------------------------------------------------------
  function tick() {
    const started = performance.now();
    try {
      if (dirty.charts) { dirty.charts = false; updateCharts(); }
      if (dirty.feeds) { dirty.feeds = false; flushFeeds(); }
      if (dirty.board) { dirty.board = false; renderLeaderboard(); }
      if (dirty.header) { dirty.header = false; renderHeader(); }
    } catch (e) {
      console.error("live view:", e);
    }
    void document.body.offsetHeight;  // lay out now, so the time below counts it (not paint)
    const took = performance.now() - started;
    setTimeout(tick, Math.min(5000, Math.max(REDRAW_MS, took / DRAW_SHARE)));
  }

  setTimeout(tick, REDRAW_MS);
  S = freshState(null);
  const initial = new URLSearchParams(location.search);
  if (initial.has("speed")) {
    const speed = $("speed"), want = initial.get("speed");
    if (![...speed.options].some((o) => o.value === want)) speed.append(new Option(`${want} days/s`, want));
    speed.value = want;
  }
  if (initial.has("from_day")) replayState.fromDay = Number(initial.get("from_day")) || 0;
  open(currentQuery);
})();
