# ruff: noqa: E501 (the page is HTML and JavaScript, laid out as such)
"""The markup, style and script of the HTML report (``_html.py`` fills in the data).

Plain DOM and one canvas, no library and no network: the page must open
from disk years later. Drawing is one pass over the resources, so a trace
of 100,000 events loads in well under a second (docs/benchmarks.md).
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__ - async-hooks report</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { padding: 12px 16px; background: #263238; color: #eceff1; }
  header h1 { font-size: 17px; margin: 0 0 4px 0; }
  main { padding: 8px 16px 32px; }
  section { margin-top: 18px; }
  h2 { font-size: 15px; margin: 0 0 6px 0; }
  #controls { display: flex; gap: 12px; align-items: center; margin: 8px 0; }
  #filter { font: inherit; padding: 4px 8px; width: 320px; }
  #timeline-box { position: relative; background: #fff; border: 1px solid #ccc; overflow: auto;
                  max-height: 520px; }
  canvas { display: block; }
  #tooltip { position: fixed; pointer-events: none; background: #fff; border: 1px solid #888;
             padding: 4px 6px; font-size: 12px; display: none; max-width: 520px;
             white-space: pre-wrap; box-shadow: 0 1px 4px rgba(0,0,0,.2); }
  table { border-collapse: collapse; background: #fff; width: 100%; }
  th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
  th { background: #eceff1; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  code, pre { font: 12px ui-monospace, monospace; }
  pre { margin: 2px 0; white-space: pre-wrap; }
  .legend span { display: inline-block; margin-right: 10px; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
  .muted { color: #777; }
  .empty { color: #777; font-style: italic; }
</style>
</head>
<body>
<header><h1>__TITLE__</h1><div id="summary"></div></header>
<main>
  <div id="controls">
    <label for="filter">Filter by store value</label>
    <input id="filter" type="search" placeholder="e.g. req-7 (shows that request's whole tree)"
           autocomplete="off">
    <span id="match-count"></span>
  </div>
  <div class="legend" id="legend"></div>
  <div id="timeline-box"><canvas id="timeline" width="800" height="100"></canvas></div>
  <div id="tooltip"></div>
  <section id="stalls"><h2>Stalls</h2><div id="stalls-body"></div></section>
  <section id="left-running"><h2>Left running at exit</h2><div id="left-body"></div></section>
  <section id="resources-section"><h2>Resources</h2>
    <div id="resources-note" class="muted"></div>
    <table id="resources"><thead><tr><th>id</th><th>type</th><th>created at</th>
      <th>trigger</th><th>start (ms)</th><th>lifetime (ms)</th><th>steps</th>
      <th>stores</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
(function () {
  const started = performance.now();
  const data = JSON.parse(document.getElementById("data").textContent);
  const S = data.strings;
  const end = Math.max(data.end, 1);
  // One object per resource, built once.
  const rows = data.resources.map(r => ({
    id: r[0], type: S[r[1]], site: S[r[2]], trigger: r[3], start: r[4],
    stop: r[5] < 0 ? end : r[5], open: r[5] < 0, stores: r[6] < 0 ? "" : S[r[6]],
    steps: r[7], busy: r[8], tid: r[9], lane: 0,
  }));
  const byId = new Map(rows.map(r => [r.id, r]));
  const children = new Map();
  for (const r of rows) {
    if (!byId.has(r.trigger)) continue;
    let list = children.get(r.trigger);
    if (!list) children.set(r.trigger, list = []);
    list.push(r);
  }

  // Lanes: each resource takes the free lane that freed up first (a heap of lane ends).
  const heap = [];
  function push(item) {
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p][0] <= heap[i][0]) break;
      [heap[p], heap[i]] = [heap[i], heap[p]]; i = p;
    }
  }
  function pop() {
    const top = heap[0], last = heap.pop();
    if (heap.length) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
        if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]]; i = m;
      }
    }
    return top;
  }
  let lanes = 0;
  for (const r of rows) {
    if (heap.length && heap[0][0] <= r.start) { r.lane = pop()[1]; }
    else { r.lane = lanes++; }
    push([r.stop, r.lane]);
  }
  const laneRows = Array.from({length: lanes}, () => []);
  for (const r of rows) laneRows[r.lane].push(r);

  const colors = new Map();
  function color(type) {
    let c = colors.get(type);
    if (!c) {
      let h = 0;
      for (let i = 0; i < type.length; i++) h = (h * 31 + type.charCodeAt(i)) % 360;
      c = "hsl(" + h + ",60%,55%)";
      colors.set(type, c);
    }
    return c;
  }

  const canvas = document.getElementById("timeline");
  const box = document.getElementById("timeline-box");
  const laneH = Math.max(2, Math.min(14, Math.floor(4000 / Math.max(lanes, 1))));
  const width = Math.max(box.clientWidth - 2, 600);
  canvas.width = width;
  canvas.height = Math.min(Math.max(lanes * laneH + 20, 40), 30000);
  const ctx = canvas.getContext("2d");
  const x = t => (t / end) * (width - 10) + 5;

  let selected = null;  // null: everything
  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#999"; ctx.font = "10px sans-serif";
    for (let i = 0; i <= 10; i++) {
      const t = end * i / 10;
      ctx.fillRect(x(t), 0, 1, 4);
      ctx.fillText((t / 1000).toFixed(1) + " ms", Math.min(x(t) + 2, width - 50), 12);
    }
    for (const r of rows) {
      const on = selected === null || selected.has(r.id);
      ctx.globalAlpha = on ? 1 : 0.08;
      ctx.fillStyle = color(r.type);
      ctx.fillRect(x(r.start), 16 + r.lane * laneH, Math.max(x(r.stop) - x(r.start), 1),
                   Math.max(laneH - 1, 1));
    }
    ctx.globalAlpha = 1;
    // Causal arrows: from the trigger's lane, at the moment it created the resource.
    const shown = selected === null ? rows : rows.filter(r => selected.has(r.id));
    if (shown.length <= 5000) {
      ctx.strokeStyle = "rgba(40,40,40,.45)"; ctx.fillStyle = "rgba(40,40,40,.6)";
      ctx.beginPath();
      for (const r of shown) {
        const parent = byId.get(r.trigger);
        if (!parent) continue;
        const px = x(r.start), y0 = 16 + parent.lane * laneH + laneH / 2;
        const y1 = 16 + r.lane * laneH + laneH / 2;
        ctx.moveTo(px, y0); ctx.lineTo(px + 3, y1);
      }
      ctx.stroke();
    }
  }

  function table(rowsShown) {
    const body = document.querySelector("#resources tbody");
    const limit = 500;
    const parts = [];
    for (const r of rowsShown.slice(0, limit)) {
      parts.push("<tr class=\"resource\" data-id=\"" + r.id + "\"><td class=\"num\">" + r.id +
        "</td><td>" + esc(r.type) + "</td><td><code>" + esc(r.site) + "</code></td><td class=\"num\">" +
        r.trigger + "</td><td class=\"num\">" + (r.start / 1000).toFixed(3) +
        "</td><td class=\"num\">" + (r.open ? "still open" : ((r.stop - r.start) / 1000).toFixed(3)) +
        "</td><td class=\"num\">" + r.steps + "</td><td><code>" + esc(storesText(r.stores)) +
        "</code></td></tr>");
    }
    body.innerHTML = parts.join("");
    document.getElementById("resources-note").textContent =
      rowsShown.length > limit ? "showing the first " + limit + " of " + rowsShown.length : "";
  }

  function esc(text) {
    return String(text).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"})[c]);
  }
  function storesText(json) {
    if (!json) return "";
    try {
      const o = JSON.parse(json);
      return Object.keys(o).map(k => k + "=" + o[k]).join(", ");
    } catch (e) { return json; }
  }

  function stallsView(query) {
    const el = document.getElementById("stalls-body");
    const list = data.stalls.filter(s => !query || JSON.stringify(s.args).includes(query));
    if (!data.stalls.length) { el.innerHTML = "<p class=\"empty\">No stall recorded (run with --stalls MS to detect them).</p>"; return; }
    el.innerHTML = "<table><thead><tr><th>duration (ms)</th><th>what blocked</th><th>stores</th><th>blocking at</th></tr></thead><tbody>" +
      list.map(s => {
        const stores = Object.keys(s.args).filter(k => !["async_id", "duration_ms", "stack"].includes(k))
          .map(k => k + "=" + s.args[k]).join(", ");
        return "<tr class=\"stall\"><td class=\"num\">" + Number(s.args.duration_ms).toFixed(1) + "</td><td>" +
          esc(s.name) + "</td><td><code>" + esc(stores) + "</code></td><td><pre>" + esc(s.args.stack || "") + "</pre></td></tr>";
      }).join("") + "</tbody></table>";
  }

  function leftView(query) {
    const el = document.getElementById("left-body");
    const list = data.left.filter(e => !query || JSON.stringify(e.stores).includes(query) ||
      e.chain.some(l => l.stores && JSON.stringify(l.stores).includes(query)));
    if (!data.left.length) { el.innerHTML = "<p class=\"empty\">Nothing was left running.</p>"; return; }
    el.innerHTML = "<table><thead><tr><th>what</th><th>state</th><th>created at</th><th>stores</th><th>caused by</th></tr></thead><tbody>" +
      list.map(e => "<tr class=\"left\"><td>" + esc(e.type) + " #" + (e.async_id === null ? "?" : e.async_id) +
        (e.awaiting ? "<br><span class=\"muted\">awaiting " + esc(e.awaiting) + "</span>" : "") +
        "</td><td>" + esc(e.state) + "</td><td><code>" + esc(e.creation_site || "") + "</code></td><td><code>" +
        esc(Object.keys(e.stores).map(k => k + "=" + e.stores[k]).join(", ")) + "</code></td><td>" +
        e.chain.map(l => l.root ? esc(l.root) : esc(l.type + " #" + l.async_id + (l.creation_site ? " at " + l.creation_site : ""))).join("<br>&larr; ") +
        "</td></tr>").join("") + "</tbody></table>";
  }

  function applyFilter() {
    const query = document.getElementById("filter").value.trim();
    let shown = rows;
    if (query) {
      selected = new Set();
      const queue = rows.filter(r => r.stores.includes(query));
      while (queue.length) {
        const r = queue.pop();
        if (selected.has(r.id)) continue;
        selected.add(r.id);
        for (const c of children.get(r.id) || []) queue.push(c);
      }
      shown = rows.filter(r => selected.has(r.id));
    } else {
      selected = null;
    }
    document.getElementById("match-count").textContent =
      query ? shown.length + " of " + rows.length + " resources" : rows.length + " resources";
    draw(); table(shown); stallsView(query); leftView(query);
  }

  canvas.addEventListener("mousemove", event => {
    const rect = canvas.getBoundingClientRect();
    const lane = Math.floor((event.clientY - rect.top - 16) / laneH);
    const t = (event.clientX - rect.left - 5) / (width - 10) * end;
    const tip = document.getElementById("tooltip");
    const hit = lane >= 0 && lane < lanes ? laneRows[lane].find(r => r.start <= t && t <= r.stop) : null;
    if (!hit) { tip.style.display = "none"; return; }
    tip.style.display = "block";
    tip.style.left = (event.clientX + 12) + "px"; tip.style.top = (event.clientY + 12) + "px";
    tip.textContent = hit.type + " #" + hit.id + "  " + hit.site + "\ntrigger #" + hit.trigger +
      ", " + hit.steps + " steps, " + (hit.busy / 1000).toFixed(3) + " ms running" +
      (hit.stores ? "\n" + storesText(hit.stores) : "");
  });
  canvas.addEventListener("mouseleave", () => { document.getElementById("tooltip").style.display = "none"; });

  const types = [...new Set(rows.map(r => r.type))].sort();
  document.getElementById("legend").innerHTML = types.map(t =>
    "<span><i style=\"background:" + color(t) + "\"></i>" + esc(t) + "</span>").join("");
  const steps = rows.reduce((n, r) => n + r.steps, 0);
  document.getElementById("summary").textContent = rows.length + " resources, " + steps +
    " steps, " + data.stalls.length + " stalls, " + data.left.length + " left running at exit, over " +
    (end / 1e6).toFixed(3) + " s" + (data.omitted ? " (" + data.omitted + " oldest resources left out)" : "");

  const input = document.getElementById("filter");
  input.addEventListener("input", applyFilter);
  const fromHash = /(?:^#|&)filter=([^&]*)/.exec(location.hash);
  if (fromHash) input.value = decodeURIComponent(fromHash[1]);
  applyFilter();
  document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
  document.body.dataset.ready = "1";
})();
</script>
</body>
</html>
"""
