// The ringtune dashboard: plain JavaScript in the browser (no build step), uPlot for the charts. It loads
// the jobs, their metric lines and the workers once, then follows the coordinator's event stream: job
// records as they are written, metric lines as they are appended, the workers every second.
/* global uPlot */

const state = {
  jobs: new Map(), // id -> job record
  lines: new Map(), // id -> metric lines (metrics.jsonl)
  lineKeys: new Map(), // id -> Set of line keys, so history and live events never double a point
  workers: [],
  selected: undefined,
  compared: new Set(),
  logScale: false,
};
const charts = new Map(); // element id -> uPlot
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];

const $ = (sel) => document.querySelector(sel);
const fmt = (v, digits = 4) =>
  typeof v === "number" && Number.isFinite(v) ? Number(v.toPrecision(digits)).toString() : "–";
const pct = (x) => (typeof x === "number" ? `${(100 * x).toFixed(1)}%` : "–");
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const lineKey = (l) =>
  `${l.step}|${l.loss !== undefined ? "t" : ""}${l.val_loss !== undefined ? "v" : ""}|${l.event ?? ""}`;
function addLine(job, line) {
  if (!state.lines.has(job)) {
    state.lines.set(job, []);
    state.lineKeys.set(job, new Set());
  }
  const key = lineKey(line);
  if (state.lineKeys.get(job).has(key)) return;
  state.lineKeys.get(job).add(key);
  state.lines.get(job).push(line);
}

async function loadLines(job) {
  const r = await fetch(`/api/jobs/${encodeURIComponent(job)}/metrics`);
  if (!r.ok) return;
  for (const line of (await r.json()).lines) addLine(job, line);
  state.lines.get(job)?.sort((a, b) => a.step - b.step);
}

// ---- jobs table ----
function renderJobs() {
  const body = $("#jobs tbody");
  body.replaceChildren();
  for (const job of [...state.jobs.values()].reverse()) {
    const total = job.total_steps ?? 0;
    const share = total > 0 ? Math.min(1, (job.step ?? 0) / total) : 0;
    const bar = el("span", { class: "progress" }, el("div"));
    bar.firstChild.style.width = `${(100 * share).toFixed(1)}%`;
    const box = el("input", { type: "checkbox", checked: state.compared.has(job.id) });
    box.addEventListener("click", (ev) => {
      ev.stopPropagation();
      if (box.checked) state.compared.add(job.id);
      else state.compared.delete(job.id);
      void ensureLines([job.id]).then(renderCharts);
    });
    const row = el(
      "tr",
      { "data-job": job.id, "data-status": job.status, class: job.id === state.selected ? "selected" : "" },
      el("td", {}, box),
      el("td", {}, job.id),
      el("td", { class: `status-${job.status}` }, job.status),
      el("td", {}, bar, ` ${job.step ?? 0}/${total || "?"}`),
      el("td", {}, fmt(job.train_loss?.last)),
      el("td", {}, fmt(job.val_loss)),
      el("td", {}, fmt(job.tokens_per_s, 3)),
      el("td", { class: "message" }, job.message ?? ""),
    );
    row.addEventListener("click", () => select(job.id));
    body.append(row);
  }
}

async function ensureLines(ids) {
  await Promise.all(ids.filter((id) => !state.lines.has(id)).map(loadLines));
}

async function select(id) {
  state.selected = id;
  $("#job-detail").hidden = false;
  $("#detail-id").textContent = id;
  await ensureLines([id, ...state.compared]);
  renderJobs();
  renderDetail();
}

// ---- charts ----
/** x: the union of the series' steps; each series null where it has no point (uPlot's aligned data). */
function aligned(seriesPoints) {
  const steps = [...new Set(seriesPoints.flatMap((pts) => pts.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(steps.map((s, i) => [s, i]));
  const ys = seriesPoints.map((pts) => {
    const y = new Array(steps.length).fill(null);
    for (const [s, v] of pts) y[index.get(s)] = v;
    return y;
  });
  return [steps, ...ys];
}

function points(job, pick) {
  const out = [];
  for (const l of state.lines.get(job) ?? []) {
    const v = pick(l);
    if (typeof v === "number" && Number.isFinite(v)) out.push([l.step, v]);
  }
  return out;
}

function drawChart(id, series, { logScale = false } = {}) {
  const host = document.getElementById(id);
  const data = aligned(series.map((s) => s.points));
  const count = series.reduce((n, s) => n + s.points.length, 0);
  host.dataset.points = String(count);
  const width = Math.max(360, host.clientWidth - 12);
  const opts = {
    width,
    height: 240,
    scales: { x: { time: false }, y: logScale ? { distr: 3 } : {} },
    axes: [{ label: "step" }, {}],
    series: [
      { label: "step" },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color ?? COLORS[i % COLORS.length],
        width: s.dashed ? 1.5 : 2,
        dash: s.dashed ? [6, 4] : undefined,
        spanGaps: true,
        points: { show: s.points.length < 40 },
      })),
    ],
  };
  const old = charts.get(id);
  const key = JSON.stringify([opts.series.map((s) => s.label), logScale, width]);
  if (old && old._ringtuneKey === key) {
    old.setData(data);
    return;
  }
  old?.destroy();
  const chart = new uPlot(opts, data, host);
  chart._ringtuneKey = key;
  charts.set(id, chart);
}

function shownJobs() {
  const ids = [...state.compared];
  if (state.selected && !ids.includes(state.selected)) ids.unshift(state.selected);
  return ids;
}

function renderCharts() {
  if (!state.selected) return;
  const jobs = shownJobs();
  const many = jobs.length > 1;
  const loss = [];
  let color = 0;
  for (const job of jobs) {
    const prefix = many ? `${job} ` : "";
    loss.push({ label: `${prefix}train`, points: points(job, (l) => l.loss), color: COLORS[color++ % COLORS.length] });
    loss.push({
      label: `${prefix}val`,
      points: points(job, (l) => l.val_loss),
      color: COLORS[color++ % COLORS.length],
    });
    const tasks = new Set();
    for (const l of state.lines.get(job) ?? []) for (const t of Object.keys(l.val_loss_by_task ?? {})) tasks.add(t);
    for (const task of [...tasks].sort())
      loss.push({
        label: `${prefix}val ${task}`,
        points: points(job, (l) => l.val_loss_by_task?.[task]),
        color: COLORS[color++ % COLORS.length],
        dashed: true,
      });
  }
  drawChart("loss-chart", loss, { logScale: state.logScale });
  $("#loss-chart").dataset.trainPoints = String(points(state.selected, (l) => l.loss).length);
  const per = (key) =>
    jobs.map((job, i) => ({
      label: many ? job : key,
      points: points(job, (l) => l[key]),
      color: COLORS[i % COLORS.length],
    }));
  drawChart("lr-chart", per("lr"));
  drawChart("grad-chart", per("grad_norm"));
  drawChart("tps-chart", per("tokens_per_s"));
  // Preference jobs (stage dpo) log rewards and accuracy per step; the charts show only when some job has them.
  const rewards = jobs.flatMap((job, i) =>
    ["rewards_chosen", "rewards_rejected", "margin"].map((key, k) => ({
      label: `${many ? `${job} ` : ""}${key}`,
      points: points(job, (l) => l[key]),
      color: COLORS[(3 * i + k) % COLORS.length],
    })),
  );
  const hasPref = rewards.some((s) => s.points.length > 0);
  for (const id of ["pref-chart", "pref-acc-chart"]) document.getElementById(id).hidden = !hasPref;
  if (hasPref) {
    drawChart("pref-chart", rewards);
    // each task_type's accuracy dashed beside the job's (the channel metrics of pref_by_task)
    const accuracy = per("accuracy");
    jobs.forEach((job, i) => {
      const tasks = new Set();
      for (const l of state.lines.get(job) ?? []) for (const t of Object.keys(l.pref_by_task ?? {})) tasks.add(t);
      [...tasks].sort().forEach((task, k) =>
        accuracy.push({
          label: `${many ? `${job} ` : ""}accuracy ${task}`,
          points: points(job, (l) => (l.loss === undefined ? undefined : l.pref_by_task?.[task]?.accuracy)),
          color: COLORS[(i + k + 1) % COLORS.length],
          dashed: true,
        }),
      );
    });
    drawChart("pref-acc-chart", accuracy);
  }
}

// ---- generation eval ----
function renderGeneration() {
  const host = $("#generation");
  const ev = state.jobs.get(state.selected)?.generation_eval;
  if (!ev || (!ev.before && !ev.after)) {
    host.replaceChildren(el("p", { class: "hint" }, "no generation eval yet"));
    return;
  }
  const scores = (r) => (r ? { ...r.tasks, all: r.overall } : {});
  const before = scores(ev.before);
  const after = scores(ev.after);
  const tasks = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort((a, b) =>
    a === "all" ? 1 : b === "all" ? -1 : a.localeCompare(b),
  );
  const table = el(
    "table",
    { id: "generation-table", "data-has-after": ev.after ? "true" : "false" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["task_type", "prompts", "exact before", "exact after", "JSON before", "JSON after"].map((h) =>
          el("th", {}, h),
        ),
      ),
    ),
  );
  const body = el("tbody");
  for (const task of tasks) {
    const b = before[task];
    const a = after[task];
    body.append(
      el(
        "tr",
        {},
        el("td", {}, task),
        el("td", {}, (a ?? b).count),
        el("td", {}, pct(b?.exact_match)),
        el("td", {}, pct(a?.exact_match)),
        el("td", {}, pct(b?.json_valid)),
        el("td", {}, pct(a?.json_valid)),
      ),
    );
  }
  table.append(body);
  const samples = el(
    "table",
    { id: "generation-samples" },
    el(
      "thead",
      {},
      el("tr", {}, ...["task_type", "prompt", "expected", "before", "after"].map((h) => el("th", {}, h))),
    ),
  );
  const sbody = el("tbody");
  for (const task of tasks.filter((t) => t !== "all")) {
    const bs = before[task]?.samples ?? [];
    const as = after[task]?.samples ?? [];
    for (let i = 0; i < Math.max(bs.length, as.length) && i < 3; i++) {
      const s = as[i] ?? bs[i];
      sbody.append(
        el(
          "tr",
          {},
          el("td", {}, task),
          el("td", { class: "sample" }, s.prompt),
          el("td", { class: "sample" }, s.expected),
          el("td", { class: "sample" }, bs[i]?.got ?? "–"),
          el("td", { class: "sample" }, as[i]?.got ?? "–"),
        ),
      );
    }
  }
  samples.append(sbody);
  host.replaceChildren(table, el("h3", {}, "sample answers"), samples);
}

// ---- workers ----
const ago = (ms) => (typeof ms === "number" ? `${(ms / 1000).toFixed(1)} s ago` : "–");
const stepMs = (ms) => (typeof ms === "number" ? `${ms.toFixed(0)} ms` : "–");
function renderWorkers() {
  const all = $("#workers tbody");
  all.replaceChildren(
    ...state.workers.map((w) =>
      el(
        "tr",
        { "data-worker": w.worker_id },
        el("td", {}, w.worker_id),
        el("td", {}, w.state),
        el("td", {}, w.job ?? ""),
        el("td", {}, ago(w.last_seen_ms_ago)),
        el("td", {}, stepMs(w.last_step_ms)),
        el("td", {}, `${w.host} pid ${w.pid}`),
        el("td", {}, w.device?.memory_bytes ? `${(w.device.memory_bytes / 2 ** 30).toFixed(1)} GiB` : "–"),
      ),
    ),
  );
  const job = state.jobs.get(state.selected);
  // the ring's size over time: an elastic job's ring grows and shrinks at its checkpoints
  const sizes = job?.ring_sizes ?? [];
  $("#ring-sizes").textContent = sizes.length
    ? "ring size: " + sizes.map((s) => `${s.size} from step ${s.step}`).join(" → ")
    : "";
  const ring = new Set(job?.workers ?? []);
  $("#ring-workers tbody").replaceChildren(
    ...state.workers
      .filter((w) => ring.has(w.worker_id))
      .map((w) =>
        el(
          "tr",
          { "data-worker": w.worker_id },
          el("td", {}, w.worker_id),
          el("td", {}, w.state),
          el("td", {}, ago(w.last_seen_ms_ago)),
          el("td", {}, stepMs(w.last_step_ms)),
          el("td", {}, w.host),
        ),
      ),
  );
}

function renderDetail() {
  renderCharts();
  renderGeneration();
  renderWorkers();
}

// ---- live updates ----
let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    renderJobs();
    if (state.selected) renderDetail();
  }, 200);
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => {
    $("#connection").textContent = "live";
    $("#connection").classList.add("live");
  };
  source.onerror = () => {
    $("#connection").textContent = "reconnecting…";
    $("#connection").classList.remove("live");
  };
  source.addEventListener("job", (ev) => {
    const job = JSON.parse(ev.data);
    const isNew = !state.jobs.has(job.id);
    state.jobs.set(job.id, job);
    // A new job is shown as soon as it arrives: the dashboard follows the latest job unless one was picked.
    if (isNew && !state.pinned) void select(job.id);
    scheduleRender();
  });
  source.addEventListener("metric", (ev) => {
    const { job, line } = JSON.parse(ev.data);
    addLine(job, line);
    scheduleRender();
  });
  source.addEventListener("workers", (ev) => {
    state.workers = JSON.parse(ev.data);
    scheduleRender();
  });
}

async function start() {
  $("#log-scale").addEventListener("change", (ev) => {
    state.logScale = ev.target.checked;
    renderCharts();
  });
  $("#jobs tbody").addEventListener("click", () => (state.pinned = true));
  connect();
  const [{ jobs }, { workers }] = await Promise.all([
    fetch("/api/jobs").then((r) => r.json()),
    fetch("/api/workers").then((r) => r.json()),
  ]);
  for (const job of jobs) state.jobs.set(job.id, job);
  state.workers = workers;
  renderJobs();
  renderWorkers();
  const latest = jobs.at(-1);
  if (latest && !state.selected) await select(latest.id);
}

void start();
