// The admins' dashboard: the shop's numbers (GET /api/stats, /api/stats/flows, /api/costs) drawn as
// plain SVG by this file, no chart library and nothing from the internet. Every bar and node carries
// its number in a <title> (hover, long press) and in data-* attributes (the browser test reads them).

const SVG = "http://www.w3.org/2000/svg";
const $ = (sel, root = document) => root.querySelector(sel);

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function titled(node, text) {
  node.append(el("title", {}, text));
  return node;
}

const pct = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);
const secs = (value) => {
  if (value === null || value === undefined) return "–";
  if (value < 90) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  if (value < 5400) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
};

function section(root, id, heading) {
  const box = document.createElement("section");
  box.className = "dash-card";
  box.id = id;
  const h = document.createElement("h3");
  h.textContent = heading;
  box.append(h);
  root.append(box);
  return box;
}

function figures(box, items) {
  const list = document.createElement("dl");
  list.className = "figures";
  for (const [label, value, test] of items) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (test) dd.dataset.test = test;
    list.append(dt, dd);
  }
  box.append(list);
}

// ---------- charts ----------

// Messages per period: a stacked bar each, inbound below, outbound above.
function messagesChart(periods) {
  const width = Math.max(480, periods.length * 22 + 40);
  const height = 160;
  const top = Math.max(1, ...periods.map((p) => p.inbound + p.outbound));
  const svg = el("svg", { viewBox: `0 0 ${width} ${height + 30}`, class: "chart", role: "img" });
  svg.append(titled(el("g"), `Messages per ${periods.length ? "period" : "day"}`));
  const step = (width - 40) / Math.max(1, periods.length);
  const bar = Math.min(36, Math.max(4, step * 0.7));
  svg.append(el("text", { x: 0, y: 12, class: "axis" }, String(top)));
  svg.append(el("rect", { x: width - 150, y: 2, width: 10, height: 10, class: "in" }));
  svg.append(el("text", { x: width - 136, y: 11, class: "label" }, "in"));
  svg.append(el("rect", { x: width - 100, y: 2, width: 10, height: 10, class: "out" }));
  svg.append(el("text", { x: width - 86, y: 11, class: "label" }, "out"));
  svg.append(el("line", { x1: 30, y1: height, x2: width, y2: height, class: "baseline" }));
  periods.forEach((p, i) => {
    const x = 36 + i * step;
    const inH = (p.inbound / top) * (height - 20);
    const outH = (p.outbound / top) * (height - 20);
    const g = titled(
      el("g", {
        "data-test": "day-bar",
        "data-period": p.period,
        "data-inbound": p.inbound,
        "data-outbound": p.outbound,
      }),
      `${p.period}: ${p.inbound} in, ${p.outbound} out`,
    );
    g.append(el("rect", { x, y: height - inH, width: bar, height: inH, class: "in" }));
    g.append(el("rect", { x, y: height - inH - outH, width: bar, height: outH, class: "out" }));
    svg.append(g);
    if (periods.length <= 14 || i % Math.ceil(periods.length / 10) === 0) {
      svg.append(el("text", { x: x + bar / 2, y: height + 14, class: "label", "text-anchor": "middle" }, p.period.slice(5)));
    }
  });
  return svg;
}

// Horizontal bars: [{key, label, value, title, attrs}].
function barsChart(rows, { unit = "", className = "" } = {}) {
  const rowHeight = 26;
  const width = 420;
  const labelWidth = 150;
  const top = Math.max(1, ...rows.map((r) => r.value || 0));
  const svg = el("svg", { viewBox: `0 0 ${width} ${rows.length * rowHeight + 6}`, class: `chart bars ${className}` });
  rows.forEach((r, i) => {
    const y = i * rowHeight + 4;
    const w = ((r.value || 0) / top) * (width - labelWidth - 60);
    const g = titled(el("g", { "data-test": r.test || "bar", ...r.attrs }), r.title || `${r.label}: ${r.value}`);
    g.append(el("text", { x: 0, y: y + 15, class: "label" }, r.label));
    g.append(el("rect", { x: labelWidth, y, width: Math.max(1, w), height: rowHeight - 8, class: r.className || "bar" }));
    g.append(el("text", { x: labelWidth + w + 6, y: y + 15, class: "value" }, `${r.display ?? r.value}${unit}`));
    svg.append(g);
  });
  return svg;
}

// ---------- flow diagrams ----------

// Columns by distance from the flow's start (breadth first over its own edges), rows in order.
function layout(flow, edges) {
  const ids = new Set(flow.states.map((s) => s.id));
  const next = new Map(flow.states.map((s) => [s.id, []]));
  for (const e of edges) if (ids.has(e.source) && ids.has(e.target) && e.source !== e.target) next.get(e.source).push(e.target);
  const depth = new Map([[flow.start, 0]]);
  const queue = [flow.start];
  while (queue.length) {
    const id = queue.shift();
    for (const to of next.get(id) || []) {
      if (!depth.has(to)) {
        depth.set(to, depth.get(id) + 1);
        queue.push(to);
      }
    }
  }
  const deepest = Math.max(0, ...depth.values());
  for (const s of flow.states) if (!depth.has(s.id)) depth.set(s.id, deepest + 1); // reached from elsewhere only
  const columns = new Map();
  for (const s of flow.states) {
    const d = depth.get(s.id);
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(s);
  }
  const place = new Map();
  for (const [d, states] of columns) states.forEach((s, row) => place.set(s.id, { col: d, row }));
  return { place, columns: Math.max(...columns.keys()) + 1, rows: Math.max(...[...columns.values()].map((c) => c.length)) };
}

function flowDiagram(flow, edges, funnel) {
  const counts = new Map((funnel?.states || []).map((s) => [s.state, s.conversations]));
  const { place, columns, rows } = layout(flow, edges);
  const W = 150, H = 44, GX = 40, GY = 18;
  const width = columns * (W + GX) + 20;
  const height = rows * (H + GY) + 20;
  // drawn at its own size (a long flow scrolls sideways rather than shrinking to an unreadable size)
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "flow", "data-test": "flow", "data-flow": flow.flow });
  const defs = el("defs");
  const marker = el("marker", { id: `arrow-${flow.flow}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
  marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  svg.append(defs);
  const at = (id) => {
    const p = place.get(id);
    return { x: 10 + p.col * (W + GX), y: 10 + p.row * (H + GY) };
  };
  for (const e of edges) {
    if (!place.has(e.source) || !place.has(e.target) || e.source === e.target) continue;
    const a = at(e.source), b = at(e.target);
    const forward = b.x > a.x;
    const x1 = forward ? a.x + W : a.x, y1 = a.y + H / 2;
    const x2 = forward ? b.x : b.x + W, y2 = b.y + H / 2;
    const mid = (x1 + x2) / 2;
    const path = el("path", { d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`, class: forward ? "edge" : "edge back", "marker-end": `url(#arrow-${flow.flow})` });
    svg.append(titled(path, e.label || "then"));
  }
  for (const s of flow.states) {
    const { x, y } = at(s.id);
    const count = counts.get(s.state);
    const g = titled(
      el("g", { "data-test": "flow-state", "data-state": s.state, "data-count": count ?? "", class: s.end ? "state end" : "state" }),
      `${flow.flow}.${s.state}: ${count ?? 0} conversation(s) reached it`,
    );
    g.append(el("rect", { x, y, width: W, height: H, rx: 8 }));
    g.append(el("text", { x: x + 8, y: y + 18, class: "name" }, s.state.length > 20 ? `${s.state.slice(0, 19)}…` : s.state));
    g.append(el("text", { x: x + 8, y: y + 35, class: "count" }, count === undefined ? "–" : String(count)));
    svg.append(g);
  }
  return svg;
}

// ---------- the page ----------

// "2026-12-01" (exclusive end) -> the six months up to the last day's: ["2026-06", …, "2026-11"].
function lastMonths(end, count) {
  const last = new Date(`${end}T00:00:00Z`);
  last.setUTCDate(last.getUTCDate() - 1);
  const months = [];
  for (let i = count - 1; i >= 0; i -= 1) {
    const d = new Date(Date.UTC(last.getUTCFullYear(), last.getUTCMonth() - i, 1));
    months.push(`${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`);
  }
  return months;
}

export async function renderDashboard(root, api, query = {}) {
  root.replaceChildren();
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v));
  const status = document.createElement("p");
  status.className = "muted";
  status.textContent = "Loading…";
  root.append(status);
  let stats, graph;
  try {
    [stats, graph] = await Promise.all([api(`/api/stats?${params}`), api("/api/stats/flows")]);
  } catch (err) {
    status.textContent = `The numbers could not be loaded: ${err.message}`;
    status.className = "error";
    return;
  }
  // The cost ledger's last six months (GET /api/costs?month=); a server without one: no card.
  const months = lastMonths(stats.to, 6);
  const costs = (await Promise.all(months.map((m) => api(`/api/costs?month=${m}`).catch(() => null)))).filter(Boolean);
  status.remove();
  root.dataset.from = stats.from;
  root.dataset.to = stats.to;

  const head = section(root, "dash-range", `${stats.from} – ${stats.to} (${stats.timezone})`);
  figures(head, [
    ["Messages in", stats.messages.inbound, "messages-in"],
    ["Messages out", stats.messages.outbound, "messages-out"],
    ["Delivered", pct(stats.delivery.delivery_rate), "delivery-rate"],
    ["Read", pct(stats.delivery.read_rate), "read-rate"],
    ["Last 24 h delivered", pct(stats.last_24h.delivery_rate), "delivery-rate-24h"],
    ["Bot reply (median / p95)", `${secs(stats.response_seconds.median)} / ${secs(stats.response_seconds.p95)}`, "reply-time"],
  ]);

  section(root, "dash-messages", `Messages per ${stats.group}`).append(messagesChart(stats.periods));

  const d = stats.delivery;
  section(root, "dash-delivery", "Delivery").append(
    barsChart([
      { label: "sent", value: d.sent, attrs: { "data-status": "sent", "data-count": d.sent }, test: "delivery-bar" },
      { label: "delivered", value: d.delivered, display: `${d.delivered} (${pct(d.delivery_rate)})`, attrs: { "data-status": "delivered", "data-count": d.delivered, "data-rate": d.delivery_rate ?? "" }, test: "delivery-bar" },
      { label: "read", value: d.read, display: `${d.read} (${pct(d.read_rate)})`, attrs: { "data-status": "read", "data-count": d.read, "data-rate": d.read_rate ?? "" }, test: "delivery-bar" },
      { label: "failed", value: d.failed, className: "bar bad", attrs: { "data-status": "failed", "data-count": d.failed }, test: "delivery-bar" },
    ]),
  );

  if (costs.length) {
    const rows = [];
    for (const month of costs) {
      for (const c of month.by_category || []) {
        rows.push({ label: `${month.month} ${c.category}`.slice(0, 22), value: Number(c.amount), display: `${c.amount} ${month.currency}`, test: "cost-bar", attrs: { "data-month": month.month, "data-category": c.category, "data-amount": c.amount } });
      }
    }
    const latest = costs[costs.length - 1];
    const box = section(root, "dash-costs", `Cost per month by category (${latest.currency})`);
    if (latest.budget) {
      const b = latest.budget;
      figures(box, [["Budget this month", `${b.spent} of ${b.limit} (${pct(b.used)})${b.level ? ` — ${b.level}` : ""}`, "budget"]]);
    }
    if (latest.messaging_limit) {
      const m = latest.messaging_limit;
      figures(box, [["Messaging limit (24 h)", `${m.used} of ${m.limit ?? "unlimited"}; headroom ${m.headroom ?? "∞"}`, "messaging-limit"]]);
    }
    box.append(rows.length ? barsChart(rows) : Object.assign(document.createElement("p"), { textContent: "nothing charged", className: "muted" }));
  }

  const failures = section(root, "dash-failures", "Failures by code");
  if (stats.failures.length) {
    failures.append(
      barsChart(
        stats.failures.map((f) => ({
          label: `${f.code ?? "?"} ${f.error}`.slice(0, 22),
          value: f.count,
          className: "bar bad",
          test: "failure-bar",
          title: `${f.code} ${f.error}: ${f.count} — ${f.meaning}`,
          attrs: { "data-code": f.code ?? "", "data-count": f.count },
        })),
      ),
    );
  } else {
    failures.append(Object.assign(document.createElement("p"), { textContent: "no failures", className: "muted" }));
  }

  const h = stats.handoffs;
  const waits = section(root, "dash-handoffs", "Handoffs");
  figures(waits, [
    ["Handed to a person", h.count, "handoffs"],
    ["Served by the bot alone", `${h.finished_by_bot} of ${h.conversations}`, "by-bot"],
  ]);
  waits.append(
    barsChart([
      { label: "first reply, median", value: h.first_reply_seconds.median || 0, display: secs(h.first_reply_seconds.median), test: "wait-bar", attrs: { "data-percentile": "median", "data-seconds": h.first_reply_seconds.median ?? "" } },
      { label: "first reply, p90", value: h.first_reply_seconds.p90 || 0, display: secs(h.first_reply_seconds.p90), test: "wait-bar", attrs: { "data-percentile": "p90", "data-seconds": h.first_reply_seconds.p90 ?? "" } },
    ]),
  );

  const funnels = new Map((stats.funnels || []).map((f) => [f.flow, f]));
  for (const flow of graph.flows) {
    const funnel = funnels.get(flow.flow);
    const box = section(root, `dash-flow-${flow.flow}`, `Flow ${flow.flow}${funnel ? `: ${funnel.entered} entered` : ""}`);
    const scroll = document.createElement("div");
    scroll.className = "flow-scroll";
    scroll.append(flowDiagram(flow, graph.edges, funnel));
    box.append(scroll);
  }
}
