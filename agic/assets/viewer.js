// The At-GC viewer (agic.viewer.atgc_viewer inlines it into each HTML file): reads the JSON in #atgc-data, draws SVG.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("atgc-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("atgc"), tip = document.getElementById("tooltip");
  const slider = document.getElementById("threshold"), sliderValue = document.getElementById("threshold-value");
  const count = document.getElementById("edge-count"), byScore = document.getElementById("color-by-score");
  const select = document.getElementById("graph-select");
  const stage = document.getElementById("stage");
  let G = null, nodeEls = [], edgeEls = [], selected = null, zoom = 1, W = 0, Htot = 0;
  const MAX_SHOWN = 1500;   // the default threshold shows at most this many edges: a deep CNN stays readable

  // viridis, 6 stops
  const VIRIDIS = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
  function viridis(t) {
    t = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(t), VIRIDIS.length - 2), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return "rgb(" + a.map((v, k) => Math.round(v + f * (b[k] - v))).join(",") + ")";
  }
  function el(name, attrs, parent) {
    const e = document.createElementNS(SVGNS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) { return (v >= 0 ? "+" : "") + v.toPrecision(3); }

  function load(g) {
    G = g; selected = null;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    document.getElementById("title").textContent = g.title;
    const layers = g.layers, L = layers.length;
    const maxSize = Math.max.apply(null, layers.map(l => l.size));
    // drawn at a size that keeps labels and kernels legible (>= 9 units per kernel, 140 per layer), then zoomed:
    // it starts fitted to the page's width, but never below 80 %; wider graphs scroll and pan (drag) instead
    const H = Math.max(420, 9 * maxSize), top = 44, left = 70;
    W = Math.max(900, 140 * L); Htot = H + top + 20;
    svg.setAttribute("viewBox", "0 0 " + W + " " + Htot);
    setZoom(Math.max(0.8, Math.min(1.5, (stage.clientWidth - 4) / W)));
    const x = i => left + i * (W - 2 * left) / Math.max(1, L - 1);
    g.pos = g.nodes.map(n => [x(n.layer), top + (n.kernel + 0.5) / layers[n.layer].size * H]);
    layers.forEach((l, i) => {
      const t = el("text", { x: x(i), y: i % 2 ? 32 : 16, class: "layer-label" }, svg);   // two rows: no overlap
      t.textContent = l.name + " (" + l.size + ")";
    });
    // edge strength relative to the strongest edge into the same destination layer
    const strongest = layers.map(() => 0);
    g.edges.forEach(e => { const d = g.nodes[e[1]].layer; strongest[d] = Math.max(strongest[d], Math.abs(e[2])); });
    g.rel = g.edges.map(e => Math.abs(e[2]) / (strongest[g.nodes[e[1]].layer] || 1));
    g.inc = g.nodes.map(() => []); g.out = g.nodes.map(() => []);
    g.edges.forEach((e, k) => { g.out[e[0]].push(k); g.inc[e[1]].push(k); });
    const edgeGroup = el("g", { id: "edges" }, svg), nodeGroup = el("g", { id: "nodes" }, svg);
    const order = g.edges.map((e, k) => k).sort((a, b) => g.rel[a] - g.rel[b]);  // strongest drawn last, on top
    edgeEls = new Array(g.edges.length);
    order.forEach(k => {
      const e = g.edges[k], a = g.pos[e[0]], b = g.pos[e[1]], r = g.rel[k];
      edgeEls[k] = el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: "edge", "data-rel": r.toFixed(4),
        "data-src": g.nodes[e[0]].id, "data-dst": g.nodes[e[1]].id,
        stroke: e[2] > 0 ? "#d62728" : "#1f77b4", "stroke-width": (0.3 + 3 * r).toFixed(2),
        "stroke-opacity": (0.15 + 0.75 * r).toFixed(2) }, edgeGroup);
    });
    const radius = Math.max(3.5, Math.min(6, 0.4 * H / maxSize));
    nodeEls = g.nodes.map((n, i) => {
      const c = el("circle", { cx: g.pos[i][0], cy: g.pos[i][1], r: radius, class: "node", "data-id": n.id }, nodeGroup);
      c.addEventListener("mouseenter", ev => showTip(i, ev));
      c.addEventListener("mousemove", moveTip);
      c.addEventListener("mouseleave", () => { tip.hidden = true; });
      c.addEventListener("click", ev => { ev.stopPropagation(); highlight(i); });
      return c;
    });
    byScore.disabled = !g.has_scores;
    byScore.checked = g.has_scores;
    const rel = g.rel.filter(r => r > 0).sort((a, b) => b - a);
    slider.value = rel.length > MAX_SHOWN ? Math.max(0.2, Math.ceil(rel[MAX_SHOWN] * 100 + 1e-9) / 100) : 0.2;
    colourNodes(); applyThreshold();
  }

  function colourNodes() {
    const use = byScore.checked && G.has_scores;
    // scores ranked within their layer: colours compare kernels that compete for the same pruning budget
    G.nodes.forEach((n, i) => nodeEls[i].setAttribute("fill", use && n.score !== null ? viridis(n.score_rank) : "#bbb"));
    document.getElementById("score-legend").hidden = !use;
  }

  function applyThreshold() {
    const t = parseFloat(slider.value);
    sliderValue.textContent = t.toFixed(2);
    let shown = 0;
    G.edges.forEach((e, k) => { const on = G.rel[k] >= t && G.rel[k] > 0; edgeEls[k].style.display = on ? "" : "none"; if (on) shown++; });
    count.textContent = shown + " of " + G.edges.length + " edges shown";
    count.dataset.shown = shown;
    if (selected !== null) highlight(selected);
  }

  function setZoom(z) {
    zoom = Math.max(0.2, Math.min(4, z));
    svg.setAttribute("width", Math.round(W * zoom)); svg.setAttribute("height", Math.round(Htot * zoom));
    svg.dataset.zoom = zoom.toFixed(3);
  }

  let pan = null;   // drag the background to pan; a drag is not a click
  stage.addEventListener("mousedown", ev => { pan = { x: ev.clientX, y: ev.clientY, l: stage.scrollLeft, t: stage.scrollTop, moved: false }; });
  window.addEventListener("mousemove", ev => {
    if (!pan) return;
    const dx = ev.clientX - pan.x, dy = ev.clientY - pan.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { pan.moved = true; stage.classList.add("panning"); }
    if (pan.moved) { stage.scrollLeft = pan.l - dx; stage.scrollTop = pan.t - dy; }
  });
  window.addEventListener("mouseup", () => { setTimeout(() => { pan = null; }, 0); stage.classList.remove("panning"); });
  stage.addEventListener("wheel", ev => { if (ev.ctrlKey) { ev.preventDefault(); setZoom(zoom * (ev.deltaY < 0 ? 1.15 : 1 / 1.15)); } },
                         { passive: false });
  document.getElementById("zoom-in").addEventListener("click", () => setZoom(zoom * 1.25));
  document.getElementById("zoom-out").addEventListener("click", () => setZoom(zoom / 1.25));
  document.getElementById("zoom-fit").addEventListener("click", () => setZoom((stage.clientWidth - 4) / W));

  function visible(k) { return edgeEls[k].style.display !== "none"; }

  function highlight(i) {
    selected = i;
    const t = parseFloat(slider.value), onNodes = new Set([i]), onEdges = new Set();
    for (const [dir, end] of [["inc", 0], ["out", 1]]) {   // upstream along incoming edges, downstream along outgoing
      const stack = [i], seen = new Set([i]);
      while (stack.length) {
        const v = stack.pop();
        G[dir][v].forEach(k => {
          if (!visible(k)) return;
          onEdges.add(k);
          const w = G.edges[k][end];
          onNodes.add(w);
          if (!seen.has(w)) { seen.add(w); stack.push(w); }
        });
      }
    }
    nodeEls.forEach((c, j) => { c.classList.toggle("dim", !onNodes.has(j)); c.classList.toggle("hl", onNodes.has(j)); c.classList.toggle("selected", j === i); });
    edgeEls.forEach((l, k) => { l.classList.toggle("dim", !onEdges.has(k)); l.classList.toggle("hl", onEdges.has(k)); });
    svg.dataset.selected = G.nodes[i].id;
    document.getElementById("selection").textContent =
      "paths through " + G.nodes[i].id + ": " + onNodes.size + " kernels, " + onEdges.size + " edges (click the background to clear)";
  }

  function clearHighlight() {
    selected = null;
    nodeEls.concat(edgeEls).forEach(e => e.classList.remove("dim", "hl", "selected"));
    delete svg.dataset.selected;
    document.getElementById("selection").textContent = "";
  }

  function strongest(list, end, n) {
    return list.slice().sort((a, b) => Math.abs(G.edges[b][2]) - Math.abs(G.edges[a][2])).slice(0, n)
      .map(k => "<tr><td>" + G.nodes[G.edges[k][end]].id + "</td><td>" + fmt(G.edges[k][2]) + "</td></tr>").join("");
  }

  function showTip(i, ev) {
    const n = G.nodes[i], layer = G.layers[n.layer];
    const score = n.score === null ? "no score" :
      n.score.toFixed(4) + " (rank " + n.rank + " of " + layer.size + " in its layer)";
    tip.innerHTML = "<b>" + n.id + "</b><br>layer " + layer.name + (layer.module ? " (<code>" + layer.module + "</code>)" : "") +
      ", kernel " + n.kernel + "<br>SA score: " + score +
      "<br><i>strongest incoming</i><table>" + (strongest(G.inc[i], 0, 3) || "<tr><td>none</td></tr>") + "</table>" +
      "<i>strongest outgoing</i><table>" + (strongest(G.out[i], 1, 3) || "<tr><td>none</td></tr>") + "</table>" +
      (DATA.patches[n.id] ? "<i>most-exciting training patches</i><br><img class=\"patches\" alt=\"most-exciting patches of " +
        n.id + "\" src=\"" + DATA.patches[n.id] + "\">" : "");
    tip.hidden = false; moveTip(ev);
  }
  function moveTip(ev) {   // beside the cursor, flipped to its left (or up) where the window would cut it off
    let x = ev.clientX + 14, y = ev.clientY + 10;
    if (x + tip.offsetWidth > window.innerWidth - 4) x = Math.max(4, ev.clientX - 14 - tip.offsetWidth);
    if (y + tip.offsetHeight > window.innerHeight - 4) y = Math.max(4, window.innerHeight - 4 - tip.offsetHeight);
    tip.style.left = x + "px"; tip.style.top = y + "px";
  }

  slider.addEventListener("input", applyThreshold);
  byScore.addEventListener("change", colourNodes);
  svg.addEventListener("click", () => { if (!(pan && pan.moved)) clearHighlight(); });
  DATA.graphs.forEach((g, k) => { const o = document.createElement("option"); o.value = k; o.textContent = g.title; select.appendChild(o); });
  select.hidden = DATA.graphs.length < 2;
  select.addEventListener("change", () => load(DATA.graphs[parseInt(select.value, 10)]));
  load(DATA.graphs[0]);
  window.atgcViewer = { data: DATA, current: () => G, highlight, clearHighlight, setZoom, zoom: () => zoom };
})();
