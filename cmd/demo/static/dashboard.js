// canoe demo dashboard: polls GET /api/dashboard once a second for what
// changed since the last poll, and draws the cluster, the charts and the
// timeline as plain SVG. No libraries, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2563eb", "#e8590c", "#0ca678", "#c2255c", "#7048e8", "#1098ad", "#f08c00", "#5c940d"];
const KIND_COLOR = { leader: "#f5b700", member: "#2563eb", node: "#d92d20", snapshot: "#98a2b3" };
const POLL_MS = 1000;
const MARGIN = { l: 48, r: 12 }; // shared by the charts and the timeline, so their time axes line up

const st = {
  view: null,        // the latest /api/dashboard answer
  samples: [],       // history, oldest first
  events: [],        // oldest first
  eventSeq: 0,
  keysVersion: "",
  windowMs: 300000,
  colors: new Map(), // node id -> color, fixed once given
  busy: false,
  cardsKey: "",
};

// ---- small helpers ----

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "style") e.setAttribute("style", v);
    else e[k] = v;
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  if (tag === "text") e.setAttribute("fill", "#667085");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function svgIn(box, height) {
  const w = Math.max(box.clientWidth, 200);
  const svg = s("svg", { width: w, height: height, viewBox: `0 0 ${w} ${height}` });
  box.replaceChildren(svg);
  return [svg, w];
}

const num = (n) => Number(n).toLocaleString("en-US");

function compact(n) {
  const a = Math.abs(n);
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(0) + "k";
  if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n * 10) / 10);
}

function bytes(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + " MiB";
  return (n / (1 << 30)).toFixed(1) + " GiB";
}

function ago(ms) {
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 90) return sec + " s ago";
  return Math.round(sec / 60) + " min ago";
}

function clock(t) {
  return new Date(t).toLocaleTimeString("en-GB", { hour12: false });
}

function colorOf(id) {
  if (!st.colors.has(id)) st.colors.set(id, PALETTE[st.colors.size % PALETTE.length]);
  return st.colors.get(id);
}

const up = (state) => state !== "stopped" && state !== "unreachable";

// ticks returns 3 to 6 round values covering [lo, hi].
function ticks(lo, hi, integer) {
  const raw = Math.max((hi - lo) / 4, integer ? 1 : 1e-9);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = p * 10;
  for (const m of [1, 2, 2.5, 5]) if (m * p >= raw && (!integer || Number.isInteger(m * p))) { step = m * p; break; }
  const out = [];
  for (let v = Math.floor(lo / step) * step; v < hi + step - 1e-9; v += step) out.push(v);
  return out;
}

// ---- header ----

function renderHeader(v) {
  $("leader").textContent = v.leader_id ? "node " + v.leader_id : "none";
  $("term").textContent = v.term;
  $("self").textContent = v.self || "?";
  const min = Math.round(span() / 60000);
  $("window").textContent = min <= 1 ? "last minute" : "last " + min + " minutes";
}

// ---- cluster picture ----

function renderPicture(v) {
  const svg = $("picture");
  const W = Math.max(svg.clientWidth, 240), H = Math.max(svg.clientHeight, 200);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const nodes = v.nodes;
  const n = nodes.length;
  // Nodes sit on a circle; the circle's size and place leave room for the
  // labels above the top nodes and below the bottom ones.
  const r = 24, pad = r + 24;
  const unit = nodes.map((_, i) => -Math.PI / 2 + (i * 2 * Math.PI) / Math.max(n, 1))
    .map((a) => ({ x: Math.cos(a), y: Math.sin(a) }));
  const minY = n > 1 ? Math.min(...unit.map((u) => u.y)) : 0, maxY = n > 1 ? Math.max(...unit.map((u) => u.y)) : 0;
  const R = n === 1 ? 0 : Math.min(W * 0.34, (H - 2 * pad) / (maxY - minY));
  const cx = W / 2, cy = H / 2 - (R * (minY + maxY)) / 2;
  const pos = new Map();
  nodes.forEach((nd, i) => pos.set(nd.id, { x: cx + R * unit[i].x, y: cy + R * unit[i].y }));
  const leader = nodes.find((nd) => nd.id === v.leader_id && nd.state === "leader");
  const kids = [];

  if (leader) {
    const p = pos.get(leader.id);
    for (const f of nodes) {
      if (f.id === leader.id) continue;
      const q = pos.get(f.id);
      const dx = q.x - p.x, dy = q.y - p.y, len = Math.hypot(dx, dy) || 1;
      const ux = dx / len, uy = dy / len;
      const x1 = p.x + ux * (r + 9), y1 = p.y + uy * (r + 9);
      const x2 = q.x - ux * (r + 7), y2 = q.y - uy * (r + 7);
      const live = up(f.state);
      const color = live ? colorOf(leader.id) : "#c0c5cc";
      const g = s("g", { class: "edge", "data-from": leader.id, "data-to": f.id, "data-live": live });
      g.append(s("line", {
        x1, y1, x2, y2, stroke: color, "stroke-width": live ? 3 : 2,
        "stroke-dasharray": live ? "8 8" : "3 6", class: live ? "flow" : null, "stroke-linecap": "round",
      }));
      // Arrowhead at the follower's end.
      const ax = x2, ay = y2, bx = -ux * 10, by = -uy * 10;
      g.append(s("polygon", {
        points: `${ax},${ay} ${ax + bx - uy * 5},${ay + by + ux * 5} ${ax + bx + uy * 5},${ay + by - ux * 5}`,
        fill: color,
      }));
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
      // The label goes beside the edge, on the side away from the centre.
      let px = -uy, py = ux;
      if (px * (mx - cx) + py * (my - cy) < 0) { px = -px; py = -py; }
      const lag = Math.max(0, (leader.last_index || 0) - (f.last_index || 0));
      let label, fill = "#475467";
      if (!live) { label = "✕ " + f.state; fill = "#d92d20"; }
      else if (lag > 0) label = num(lag) + " behind";
      else label = "in sync";
      const anchor = px > 0.3 ? "start" : px < -0.3 ? "end" : "middle";
      g.append(s("text", {
        x: mx + px * 10, y: my + py * 10 + (py > 0.3 ? 10 : py < -0.3 ? -2 : 4),
        "text-anchor": anchor, fill, "font-weight": live ? 400 : 600, text: label,
      }));
      kids.push(g);
    }
  } else {
    kids.push(s("text", { x: cx, y: cy + 4, "text-anchor": "middle", fill: "#d92d20", "font-weight": 600, text: "no leader" }));
  }

  for (const nd of nodes) {
    const p = pos.get(nd.id);
    const color = colorOf(nd.id);
    const live = up(nd.state);
    const isLeader = leader && leader.id === nd.id;
    const g = s("g", { class: "pic-node " + nd.state, "data-node-id": nd.id, "data-voter": nd.voter });
    if (isLeader) g.append(s("circle", { cx: p.x, cy: p.y, r: r + 6, fill: "none", stroke: "#f5b700", "stroke-width": 4 }));
    let fill = color, stroke = "#fff", dash = null, ink = "#fff";
    if (!nd.voter) { fill = "#fff"; stroke = color; dash = "4 3"; ink = color; }
    if (!live) { fill = "#eef0f3"; stroke = "#98a2b3"; dash = "4 3"; ink = "#667085"; }
    g.append(s("circle", { cx: p.x, cy: p.y, r, fill, stroke, "stroke-width": 3, "stroke-dasharray": dash }));
    g.append(s("text", {
      x: p.x, y: p.y + 5, "text-anchor": "middle", fill: ink,
      style: "font-size:15px;font-weight:700", text: nd.id.length > 4 ? nd.id.slice(0, 3) + "…" : nd.id,
    }));
    const role = (live ? nd.state : nd.state.toUpperCase()) + (nd.voter ? "" : " · " + suffrage(nd));
    // Labels go on the outside, away from the edges.
    const above = n > 1 && p.y < cy - 1;
    g.append(s("text", {
      x: p.x, y: above ? p.y - r - 10 : p.y + r + 17, "text-anchor": "middle",
      fill: live ? "#344054" : "#d92d20", style: "font-weight:600", text: role,
    }));
    g.append(s("title", { text: `node ${nd.id}: ${nd.state}, ${suffrage(nd)}, commit ${nd.commit_index}` }));
    kids.push(g);
  }
  svg.replaceChildren(...kids);
}

// ---- node cards ----

// suffrage names a node's part in the quorum: a voter, a read replica (a
// non-voter that stays one until promoted) or a non-voter catching up.
function suffrage(n) {
  if (n.voter) return "voter";
  return n.replica ? "read replica" : "non-voter";
}

function renderNodes(v) {
  const key = JSON.stringify([v.controls, st.busy, v.leader_id, v.nodes.map((n) => [n.id, n.state, n.voter, n.replica])]);
  if (key !== st.cardsKey) {
    st.cardsKey = key;
    $("nodes").replaceChildren(...v.nodes.map((n) => nodeCard(v, n)));
  }
  // Numbers change every poll: update them in place, so a click on a
  // button never lands on a card being replaced.
  for (const n of v.nodes) {
    const card = $("nodes").querySelector(`[data-node-id="${CSS.escape(n.id)}"]`);
    if (!card) continue;
    const nums = card.querySelector(".node-nums");
    const text = `term ${num(n.term)} · commit ${num(n.commit_index)} · applied ${num(n.applied_index)}`;
    if (n.stale) {
      nums.replaceChildren(h("span", { class: "stale", text: `last seen ${ago(st.view.now - n.last_seen)}: ` }), text);
    } else if (!up(n.state)) {
      nums.textContent = "never seen running";
    } else {
      nums.textContent = text;
    }
    card.querySelector(".node-err").textContent = n.error || "";
  }
}

function nodeCard(v, n) {
  const live = up(n.state);
  const isLeader = n.id === v.leader_id && n.state === "leader";
  const addr = [["raft", n.raft], ["api", n.api], ["gossip", n.gossip], ["kv", n.kv]]
    .filter(([, a]) => a).map(([k, a]) => h("div", { title: k + " " + a }, h("b", { text: k }), a));
  let button = null;
  if (v.controls) {
    const action = live ? "stop" : "start";
    button = h("button", {
      class: action, text: live ? "Stop" : "Start", disabled: st.busy,
      "data-action": action, "data-node": n.id,
    });
    button.addEventListener("click", () => act(n.id, action));
  }
  return h("div", {
    class: "node" + (live ? "" : " down") + (isLeader ? " leader" : ""),
    style: `--c:${colorOf(n.id)}`, "data-node-id": n.id, "data-state": n.state,
  },
  h("div", { class: "node-head" },
    h("span", { class: "node-name", text: "node " + n.id }),
    h("span", { class: "badge " + (isLeader ? "leader" : n.state), text: n.state }),
    h("span", { class: "badge" + (n.voter ? "" : " nonvoter"), text: suffrage(n) })),
  h("div", { class: "node-nums" }),
  h("div", { class: "node-addr" }, ...addr),
  h("div", { class: "node-addr node-err", style: "color:#d92d20" }),
  button);
}

async function act(id, action) {
  st.busy = true;
  $("status").textContent = (action === "stop" ? "stopping" : "starting") + " node " + id + "…";
  renderNodes(st.view);
  try {
    const r = await fetch("/api/nodes/" + encodeURIComponent(id) + "/" + action, { method: "POST" });
    const body = await r.json();
    $("status").textContent = r.ok ? "" : "node " + id + ": " + body.error;
  } catch (e) {
    $("status").textContent = String(e);
  }
  st.busy = false;
  pollNow();
}

// ---- charts ----

// series: [{id, color, pts: [[t, y] | null]}], null breaks the line.
function lineChart(box, t0, t1, series, opts) {
  const H = opts.height;
  const [svg, W] = svgIn(box, H);
  const top = 8, bottom = H - 6;
  const ys = series.flatMap((sr) => sr.pts.filter(Boolean).map((p) => p[1]));
  let lo = opts.fromZero || !ys.length ? 0 : Math.min(...ys), hi = ys.length ? Math.max(...ys) : 1;
  if (hi - lo < 4) hi = lo + 4;
  const tk = ticks(lo, hi, opts.integer);
  lo = tk[0];
  hi = tk[tk.length - 1];
  const x = (t) => MARGIN.l + ((t - t0) / (t1 - t0)) * (W - MARGIN.l - MARGIN.r);
  const y = (v) => bottom - ((v - lo) / (hi - lo || 1)) * (bottom - top);
  svg.setAttribute("data-max", ys.length ? Math.max(...ys) : 0);
  svg.setAttribute("data-t1", t1);

  minuteGrid(svg, t0, t1, x, top, bottom);
  for (const v of tk) {
    svg.append(s("line", { x1: MARGIN.l, x2: W - MARGIN.r, y1: y(v), y2: y(v), stroke: "#eef0f3" }));
    svg.append(s("text", { x: MARGIN.l - 6, y: y(v) + 4, "text-anchor": "end", text: compact(v) }));
  }
  series.forEach((sr, i) => {
    let d = "", pen = false, last = null;
    for (const p of sr.pts) {
      if (!p) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
      pen = true;
      last = p;
    }
    if (!d) return;
    // Earlier series are drawn wider, so lines that overlap (nodes in
    // step) still show every node.
    const width = 1.8 + (series.length - 1 - i) * 1.6;
    svg.append(s("path", {
      d, fill: "none", stroke: sr.color, "stroke-width": width, "stroke-linejoin": "round",
      "stroke-opacity": 0.9, class: "series", "data-node": sr.id,
    }));
    if (last) svg.append(s("circle", { cx: x(last[0]), cy: y(last[1]), r: 3, fill: sr.color }));
  });
  if (!ys.length) {
    svg.append(s("text", { x: (MARGIN.l + W) / 2, y: (top + bottom) / 2 + 4, "text-anchor": "middle", text: opts.empty }));
  }
}

// span is how far back the charts go: the history held, at least a minute
// and at most the server's window, so a page just opened is not squeezed
// against the right edge.
function span() {
  const t1 = st.view.now;
  const first = st.samples.length ? st.samples[0].t : t1;
  return Math.min(st.windowMs, Math.max(60000, t1 - first));
}

const tickStep = (sp) => (sp <= 90000 ? 15000 : sp <= 180000 ? 30000 : 60000);

function tickLabel(ms) {
  if (ms === 0) return "now";
  if (ms < 60000) return "−" + ms / 1000 + " s";
  return "−" + Math.round(ms / 6000) / 10 + " min";
}

function minuteGrid(svg, t0, t1, x, top, bottom) {
  for (let t = t1; t >= t0; t -= tickStep(t1 - t0)) {
    svg.append(s("line", { x1: x(t), x2: x(t), y1: top, y2: bottom, stroke: "#f2f4f7" }));
  }
}

function renderCharts() {
  const v = st.view;
  const t1 = v.now, t0 = t1 - span();
  const ids = v.nodes.map((n) => n.id);
  const writes = ids.map((id) => ({
    id, color: colorOf(id),
    pts: st.samples.map((smp) => {
      const p = smp.nodes.find((q) => q.id === id);
      return p && up(p.state) && p.wps !== undefined ? [smp.t, p.wps] : null;
    }),
  }));
  const commits = ids.map((id) => ({
    id, color: colorOf(id),
    pts: st.samples.map((smp) => {
      const p = smp.nodes.find((q) => q.id === id);
      return p && up(p.state) && p.commit > 0 ? [smp.t, p.commit] : null; // 0: not known yet
    }),
  }));
  lineChart($("chart-writes"), t0, t1, writes, { height: 140, fromZero: true, empty: "no writes measured yet" });
  lineChart($("chart-commit"), t0, t1, commits, { height: 140, fromZero: false, integer: true, empty: "no samples yet" });
  renderTimeline(t0, t1);

  const lastSample = st.samples[st.samples.length - 1];
  $("legend").replaceChildren(...v.nodes.map((n) => {
    const p = lastSample && lastSample.nodes.find((q) => q.id === n.id);
    const rate = p && p.wps !== undefined && up(p.state) ? compact(p.wps) + " writes/s" : up(n.state) ? "" : n.state;
    return h("span", { "data-node": n.id },
      h("i", { style: `background:${colorOf(n.id)}` }), "node " + n.id + (rate ? "  " + rate : ""));
  }));
  $("writes-note").hidden = !v.nodes.some((n) => up(n.state) && n.writes === undefined);
}

function renderTimeline(t0, t1) {
  const H = 74;
  const [svg, W] = svgIn($("timeline"), H);
  const x = (t) => MARGIN.l + ((t - t0) / (t1 - t0)) * (W - MARGIN.l - MARGIN.r);
  minuteGrid(svg, t0, t1, x, 2, 50);
  svg.append(s("text", { x: MARGIN.l - 6, y: 17, "text-anchor": "end", text: "leader" }));
  svg.append(s("text", { x: MARGIN.l - 6, y: 43, "text-anchor": "end", text: "events" }));

  // Leader ribbon: one band per run of samples with the same leader.
  const smp = st.samples.filter((p) => p.t >= t0);
  for (let i = 0; i < smp.length; ) {
    let j = i;
    while (j + 1 < smp.length && smp[j + 1].leader === smp[i].leader) j++;
    const xa = x(smp[i].t), xb = j + 1 < smp.length ? x(smp[j + 1].t) : x(t1);
    const who = smp[i].leader;
    const band = s("g", { class: "band", "data-leader": who || "none" },
      s("rect", { x: xa, y: 6, width: Math.max(1, xb - xa), height: 16, rx: 3,
        fill: who ? colorOf(who) : "#fde8e7", "fill-opacity": who ? 0.85 : 1 }),
      s("title", { text: who ? `node ${who} leads from ${clock(smp[i].t)}` : `no leader from ${clock(smp[i].t)}` }));
    if (xb - xa > 46) {
      band.append(s("text", { x: xa + 6, y: 18, style: `fill:${who ? "#fff" : "#d92d20"};font-weight:600`, text: who ? "node " + who : "none" }));
    }
    svg.append(band);
    i = j + 1;
  }

  // Event marks, with a short label where there is room.
  let labelEnd = -Infinity;
  for (const e of st.events) {
    if (e.t < t0) continue;
    const cx = x(Math.min(e.t, t1)), cy = 36;
    const g = s("g", { class: "mark", "data-kind": e.kind, "data-what": e.what, "data-node": e.node, "data-text": e.text },
      s("title", { text: clock(e.t) + "  " + e.text }));
    g.append(s("line", { x1: cx, x2: cx, y1: 24, y2: 48, stroke: "#d0d5dd" }));
    g.append(markShape(e, cx, cy));
    let label = "";
    if (e.kind === "node") label = e.what === "stopped" ? "stop " + e.node : e.what === "unreachable" ? "lost " + e.node : "start " + e.node;
    else if (e.kind === "leader") label = e.node ? "★" + e.node : "no leader";
    const width = label.length * 6 + 6; // a generous guess at 10px text
    const tx = Math.max(labelEnd + 4, Math.min(cx + 7, W - MARGIN.r - width));
    if (label && tx + width <= W && tx < cx + 40) {
      g.append(s("text", { x: tx, y: 48, style: "font-size:10px", text: label }));
      labelEnd = tx + width;
    }
    svg.append(g);
  }

  // Time axis.
  const step = tickStep(t1 - t0);
  for (let k = 0; k * step <= t1 - t0; k++) {
    svg.append(s("text", { x: x(t1 - k * step), y: H - 4, "text-anchor": k === 0 ? "end" : "middle", text: tickLabel(k * step) }));
  }
}

function markShape(e, cx, cy) {
  const c = KIND_COLOR[e.kind] || "#98a2b3";
  switch (e.kind) {
    case "node":
      if (e.what === "stopped" || e.what === "unreachable") {
        return s("polygon", { points: `${cx - 6},${cy - 5} ${cx + 6},${cy - 5} ${cx},${cy + 6}`, fill: "#d92d20" });
      }
      return s("polygon", { points: `${cx - 6},${cy + 5} ${cx + 6},${cy + 5} ${cx},${cy - 6}`, fill: "#12a150" });
    case "leader":
      return s("polygon", { points: `${cx},${cy - 7} ${cx + 6},${cy} ${cx},${cy + 7} ${cx - 6},${cy}`, fill: e.node ? c : "#d92d20" });
    case "member":
      return s("circle", { cx, cy, r: 5, fill: c });
  }
  return s("circle", { cx, cy, r: 3.5, fill: "#fff", stroke: c, "stroke-width": 2 });
}

// ---- events list ----

function renderEvents() {
  const shown = st.events.slice(-100).reverse();
  $("events").replaceChildren(...shown.map((e) => h("li", { "data-kind": e.kind, "data-what": e.what },
    h("time", { text: clock(e.t) }),
    h("span", { class: "dot", style: `--k:${e.kind === "node" && (e.what === "started" || e.what === "answers") ? "#12a150" : KIND_COLOR[e.kind]}` }),
    h("span", { class: "text", text: e.text }))));
  if (!shown.length) $("events").replaceChildren(h("li", { class: "empty", text: "no events yet" }));
}

// ---- keys ----

function renderKeys(k) {
  if (k.error) {
    $("keys-summary").textContent = "";
    $("keys").replaceChildren(h("tr", {}, h("td", { colSpan: 3, class: "empty", text: k.error })));
    return;
  }
  $("keys-summary").textContent = `${num(k.count)} keys · ${bytes(k.bytes)} on node ${k.node}`;
  if (!k.recent.length) {
    $("keys").replaceChildren(h("tr", {}, h("td", { colSpan: 3, class: "empty", text: "no keys yet: PUT one above, or curl -X PUT --data-binary 'world' " + location.origin + "/kv/hello" })));
    return;
  }
  $("keys").replaceChildren(...k.recent.map((it) => {
    const value = h("td", { class: "v", title: it.binary ? "binary value, first bytes in hex" : it.value + (it.truncated ? "…" : "") });
    if (it.binary) value.append(h("span", { class: "tag", text: "binary" }), it.value + (it.truncated ? "…" : ""));
    else if (it.size === 0) value.append(h("span", { class: "tag", text: "empty" }));
    else value.append(it.value + (it.truncated ? "…" : ""));
    return h("tr", { "data-key": it.key },
      h("td", { class: "k", title: it.key + (it.key_truncated ? "…" : ""), text: it.key + (it.key_truncated ? "…" : "") }),
      value,
      h("td", { class: "n", text: bytes(it.size) }));
  }));
}

$("put").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("key").value;
  try {
    const r = await fetch("/kv/" + encodeURIComponent(key), { method: "PUT", body: $("value").value });
    $("status").textContent = r.ok ? "" : "PUT " + key + ": " + (await r.json()).error;
  } catch (e) {
    $("status").textContent = String(e);
  }
  pollNow();
});

// ---- polling ----

function merge(d) {
  st.windowMs = d.window_ms || st.windowMs;
  const last = st.samples.length ? st.samples[st.samples.length - 1].t : 0;
  for (const smp of d.samples) if (smp.t > last) st.samples.push(smp);
  const from = d.now - st.windowMs - 2000;
  while (st.samples.length && st.samples[0].t < from) st.samples.shift();
  for (const e of d.events) if (e.seq > st.eventSeq) { st.events.push(e); st.eventSeq = e.seq; }
  if (st.events.length > 300) st.events.splice(0, st.events.length - 300);
  if (d.keys) { st.keysVersion = d.keys.version; renderKeys(d.keys); }
  st.view = d;
}

function render() {
  const v = st.view;
  if (!v) return;
  for (const n of v.nodes) colorOf(n.id); // colors follow node order
  renderHeader(v);
  renderPicture(v);
  renderNodes(v);
  renderCharts();
  renderEvents();
}

let timer = 0, inflight = false, again = false;

function pollNow() {
  clearTimeout(timer);
  poll();
}

async function poll() {
  if (inflight) { again = true; return; }
  inflight = true;
  try {
    const last = st.samples.length ? st.samples[st.samples.length - 1].t : 0;
    const q = new URLSearchParams({ samples_after: last, events_after: st.eventSeq, keys: st.keysVersion });
    const r = await fetch("/api/dashboard?" + q, { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    merge(await r.json());
    render();
    $("conn").className = "conn ok";
    $("conn").textContent = "";
  } catch (e) {
    $("conn").className = "conn down";
    $("conn").textContent = "cannot reach this node (" + e.message + "); retrying";
  } finally {
    inflight = false;
    timer = setTimeout(poll, again ? 0 : POLL_MS);
    again = false;
  }
}

window.addEventListener("resize", () => render());
poll();
