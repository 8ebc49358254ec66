"""The HTML report's page: its inline style and script, around one JSON blob (`farm.report.html`).

The script renders everything from the blob: long lists a page at a time, the timeline on a canvas,
so that a suite of 100,000 tests never makes a DOM of 100,000 rows. It fetches nothing.
"""

PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{{TITLE}}</title>
<script>
window.farmErrors = [];
function farmError(text) {
  window.farmErrors.push(String(text));
  var box = document.getElementById("farm-errors");
  if (box) { box.textContent = window.farmErrors.join("\n"); box.hidden = false; }
}
window.addEventListener("error", function (ev) { farmError("error: " + ev.message + " (line " + ev.lineno + ")"); });
window.addEventListener("unhandledrejection", function (ev) { farmError("unhandled rejection: " + ev.reason); });
document.addEventListener("securitypolicyviolation", function (ev) { farmError("blocked by the page's policy: " + ev.effectiveDirective + " " + ev.blockedURI); });
(function () {
  var original = console.error;
  console.error = function () { farmError("console.error: " + Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
})();
</script>
<style>
:root {
  --bg: #f6f7f9; --card: #fff; --ink: #1d232b; --muted: #5d6b7a; --line: #dde2e8;
  --passed: #2e9d55; --failed: #d73a3a; --error: #9c1f4a; --skipped: #c9a227; --xfailed: #8a9aa8;
  --xpassed: #5b8def; --timeout: #e8831c; --crashed: #5a2a82; --flaky: #f0b429; --not_run: #b9c2cc;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
header { padding: 18px 24px 10px; background: #1f2a37; color: #fff; }
header h1 { margin: 0 0 4px; font-size: 20px; font-weight: 600; }
header .meta { color: #c3cdd8; font-size: 13px; }
header .meta code { color: #e6edf3; }
main { padding: 12px 24px 40px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; margin: 12px 0; padding: 12px 16px; }
section h2 { margin: 0 0 8px; font-size: 16px; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; font-size: 13px; margin-left: 8px; vertical-align: middle; }
.pill.ok { background: var(--passed); } .pill.bad { background: var(--failed); } .pill.other { background: var(--timeout); }
.chips { display: flex; flex-wrap: wrap; gap: 8px; }
.chip { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; cursor: pointer; background: #fff; min-width: 84px; text-align: left; font: inherit; }
.chip b { display: block; font-size: 20px; }
.chip.zero { opacity: .45; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.o { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 12px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
tr.row { cursor: pointer; } tr.row:hover { background: #f0f4f8; }
pre { background: #0f1720; color: #e6edf3; padding: 10px; border-radius: 4px; overflow: auto; max-height: 480px; font-size: 12px; margin: 6px 0; white-space: pre-wrap; word-break: break-word; }
details { border-top: 1px solid var(--line); padding: 6px 0; }
details summary { cursor: pointer; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
.controls { display: flex; gap: 8px; align-items: center; margin-bottom: 8px; flex-wrap: wrap; }
.controls input { flex: 1; min-width: 220px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
.controls select, .controls button { padding: 4px 8px; font: inherit; }
.pager { color: var(--muted); font-size: 13px; }
.figs { display: flex; flex-wrap: wrap; gap: 24px; margin-bottom: 10px; }
.figs div b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.figs div span { color: var(--muted); font-size: 12px; }
.meter { background: #e8ecf0; border-radius: 3px; height: 10px; width: 160px; display: inline-block; vertical-align: middle; }
.meter i { display: block; height: 10px; border-radius: 3px; background: #3d7cc9; }
.tl { display: flex; position: relative; border: 1px solid var(--line); }
.lanes { flex: none; width: 170px; border-right: 1px solid var(--line); }
.lane { height: 22px; line-height: 22px; font-size: 12px; padding: 0 6px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-family: ui-monospace, Menlo, Consolas, monospace; }
.lane.first { border-top: 1px solid #b8c2cc; }
.axis-pad { height: 22px; }
.tl-canvas { flex: 1; min-width: 0; position: relative; }
canvas { display: block; }
#tip { position: fixed; pointer-events: none; background: #1f2a37; color: #fff; font-size: 12px; padding: 6px 8px; border-radius: 4px; max-width: 520px; z-index: 10; white-space: pre-wrap; display: none; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: 12px; color: var(--muted); margin: 6px 0; }
.legend .mk { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: -1px; border: 2px solid; background: #e3e8ee; }
#pinned { margin-top: 8px; }
#farm-errors { background: #fde8e8; color: #8a1c1c; border: 1px solid #f3b4b4; }
.muted { color: var(--muted); }
</style>
</head>
<body>
<pre id="farm-errors" hidden></pre>
<header><h1 id="title"></h1><div class="meta" id="meta"></div></header>
<main>
<section id="summary"><h2>Summary</h2><div class="chips" id="chips"></div><div id="notes"></div></section>
<div id="optional-top"></div>
<section id="timeline"><h2>Timeline</h2>
  <div class="legend" id="legend"></div>
  <div class="tl"><div class="lanes" id="lanes"><div class="axis-pad"></div></div><div class="tl-canvas" id="tl-box"><canvas id="tl"></canvas></div></div>
  <div id="pinned" class="muted">Hover over the timeline for a test; click to keep it here.</div>
</section>
<section id="figures"><h2>Durations, throughput, workers</h2><div class="figs" id="figs"></div><table id="workers"></table></section>
<section id="failures"><h2>Failures and flaky tests</h2><div class="controls"><span class="pager" id="fail-pager"></span></div><div id="fail-list"></div></section>
<section id="tests"><h2>All tests</h2>
  <div class="controls"><select id="filter"></select><input id="search" type="search" placeholder="Search test ids, messages, tracebacks and output"><span class="pager" id="pager"></span></div>
  <table><thead><tr><th>test</th><th>outcome</th><th class="num">duration</th><th class="num">runs</th><th>message</th></tr></thead><tbody id="rows"></tbody></table>
</section>
<section id="slowest"><h2>Slowest tests</h2><table id="slow"></table></section>
<div id="optional-bottom"></div>
</main>
<div id="tip"></div>
<script type="application/json" id="farm-data">{{DATA}}</script>
<script>
(function () {
"use strict";
var D = JSON.parse(document.getElementById("farm-data").textContent);
var T = D.tests, OUT = D.outcomes, N = T.id.length;
var FAILING = {failed: 1, error: 1, timeout: 1, crashed: 1};
var MARKS = {"lease-lost": ["#d73a3a", "lost lease (attempt lost)"], "handed-back": ["#e8831c", "handed back"],
  "rerun": ["#7b4fd6", "rerun (--rerun-failures)"], "crash-retry": ["#c2188f", "crash retry"],
  "split": ["#138a8a", "split (run-time balancing)"], "fenced": ["#5d6b7a", "fenced records (never counted)"]};
function $(id) { return document.getElementById(id); }
function el(tag, attrs, text) {
  var e = document.createElement(tag);
  if (attrs) for (var k in attrs) { if (k === "class") e.className = attrs[k]; else e.setAttribute(k, attrs[k]); }
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function css(name) { return getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim() || "#999"; }
var COLOR = {}; OUT.forEach(function (o) { COLOR[o] = css(o); });
function badge(o) { var b = el("span", {"class": "o"}, o); b.style.background = COLOR[o] || "#999"; return b; }
function secs(s) {
  if (s === null || s === undefined) return "";
  if (s >= 120) return (s / 60).toFixed(1) + " min";
  if (s >= 10) return s.toFixed(1) + " s";
  if (s >= 0.1) return s.toFixed(2) + " s";
  return (s * 1000).toFixed(1) + " ms";
}
function txt(v) { return typeof v === "string" ? v : JSON.stringify(v); }

// --- header and summary
var S = D.suite;
$("title").textContent = "farm " + (S.project || "") + " ";
var pill = el("span", {"class": "pill " + (S.exit_code === 0 ? "ok" : (S.exit_code === 1 ? "bad" : "other"))},
  S.status + ", exit code " + S.exit_code);
$("title").appendChild(pill);
$("meta").appendChild(el("code", null, S.suite_id));
$("meta").appendChild(document.createTextNode("  pool " + S.pool + "  ·  " + (S.started_at || "") + "  ·  wall " +
  secs(S.duration_s) + "  ·  pytest " + (S.pytest_args || []).join(" ")));
var filter = $("filter");
filter.appendChild(el("option", {value: "all"}, "all outcomes (" + N + ")"));
filter.appendChild(el("option", {value: "failing"}, "failing (failed, error, timeout, crashed)"));
OUT.forEach(function (o, i) {
  var n = D.summary[o] || 0;
  var chip = el("button", {"class": "chip" + (n ? "" : " zero"), "data-outcome": o});
  var dot = el("span", {"class": "dot"}); dot.style.background = COLOR[o];
  chip.appendChild(dot); chip.appendChild(document.createTextNode(o.replace("_", " "))); chip.appendChild(el("b", null, n));
  chip.onclick = function () { filter.value = o; update(); $("tests").scrollIntoView(); };
  $("chips").appendChild(chip);
  if (n) filter.appendChild(el("option", {value: o}, o + " (" + n + ")"));
});
if (S.message) $("notes").appendChild(el("p", null, S.message));
if (S.stopped) $("notes").appendChild(el("p", null, S.stopped));

// --- optional sections (other parts of the report add them; nothing when absent)
function listSection(where, id, title, items, fields) {
  var sec = el("section", {id: id}); sec.appendChild(el("h2", null, title));
  var table = el("table"), head = el("tr");
  fields.forEach(function (f) { head.appendChild(el("th", null, f)); }); table.appendChild(head);
  items.forEach(function (item) {
    var tr = el("tr");
    fields.forEach(function (f) { tr.appendChild(el("td", null, item && typeof item === "object" ? cell(item[f]) : txt(item))); });
    table.appendChild(tr);
  });
  sec.appendChild(table); $(where).appendChild(sec);
}
// A cell's text: args joined by spaces, counts as `4 passed, 1 failed`, verdicts as `gate: detail (verdict)`.
function cell(v) {
  if (v === undefined || v === null) return "";
  if (Array.isArray(v)) return v.every(function (x) { return typeof x === "string"; }) ? v.join(" ") : v.map(cell).join("; ");
  if (typeof v === "object") {
    if (typeof v.gate === "string" && typeof v.detail === "string") return v.gate + ": " + v.detail + " (" + v.verdict + ")";
    var ks = Object.keys(v);
    if (ks.every(function (k) { return typeof v[k] === "number"; })) return ks.map(function (k) { return v[k] + " " + k.replace("_", " "); }).join(", ");
  }
  return txt(v);
}
function keysOf(items) {
  var seen = [];
  items.forEach(function (i) { if (i && typeof i === "object") Object.keys(i).forEach(function (k) { if (seen.indexOf(k) < 0) seen.push(k); }); });
  return seen.length ? seen : ["value"];
}
["stages"].forEach(function (key) {
  if (Array.isArray(D[key]) && D[key].length) listSection("optional-top", key, key.charAt(0).toUpperCase() + key.slice(1), D[key], keysOf(D[key]));
});
// quality gates: a row per gate, its verdict as a pill; quarantined tests with their real outcome
var VERDICT = {passed: "ok", failed: "bad", skipped: "other"};
if (Array.isArray(D.gates) && D.gates.length) {
  var gs = el("section", {id: "gates"}); gs.appendChild(el("h2", null, "Quality gates"));
  var gt = el("table"), gh = el("tr");
  ["gate", "verdict", "value", "limit", "detail"].forEach(function (h, i) { gh.appendChild(el("th", i === 2 || i === 3 ? {"class": "num"} : null, h)); }); gt.appendChild(gh);
  D.gates.forEach(function (g) {
    var tr = el("tr", {"data-gate": g.gate, "data-verdict": g.verdict});
    tr.appendChild(el("td", {"class": "id"}, g.gate));
    var vc = el("td"); vc.appendChild(el("span", {"class": "pill " + (VERDICT[g.verdict] || "other")}, String(g.verdict).toUpperCase())); tr.appendChild(vc);
    var pct = g.gate === "min-pass-rate" || g.gate === "max-duration-regression" ? "%" : "";
    var plus = g.gate === "max-duration-regression" ? "+" : "";
    tr.appendChild(el("td", {"class": "num"}, g.value === null || g.value === undefined ? "–" :
      (plus && g.value >= 0 ? "+" : "") + txt(g.value) + pct));
    tr.appendChild(el("td", {"class": "num"}, plus + txt(g.limit) + pct));
    tr.appendChild(el("td", null, txt(g.detail)));
    gt.appendChild(tr);
  });
  gs.appendChild(gt); $("optional-top").appendChild(gs);
}
if ((Array.isArray(D.quarantined) && D.quarantined.length) || (Array.isArray(D.quarantine_unknown) && D.quarantine_unknown.length)) {
  var qs = el("section", {id: "quarantined"}); qs.appendChild(el("h2", null, "Quarantined"));
  qs.appendChild(el("p", {"class": "muted"}, "These tests ran; their outcomes do not fail the suite."));
  var qt = el("table"), qh = el("tr");
  ["test", "outcome", "reason"].forEach(function (h) { qh.appendChild(el("th", null, h)); }); qt.appendChild(qh);
  (D.quarantined || []).forEach(function (q) {
    var tr = el("tr", {"data-quarantined": q.test_id});
    tr.appendChild(el("td", {"class": "id"}, q.test_id));
    var oc = el("td"); oc.appendChild(badge(q.outcome)); tr.appendChild(oc);
    tr.appendChild(el("td", null, q.reason)); qt.appendChild(tr);
  });
  qs.appendChild(qt);
  (D.quarantine_unknown || []).forEach(function (t) { qs.appendChild(el("p", {"class": "muted", "data-unknown": t}, "--quarantine " + t + ": no such test in the collection (ignored)")); });
  $("optional-top").appendChild(qs);
}

// --- the timeline
var ROW = 22, AXIS = 22, canvas = $("tl"), box = $("tl-box"), ctx = canvas.getContext("2d");
var wall = D.wall > 0 ? D.wall : 1, lanesOf = [];
D.lanes.forEach(function (lane, i) {
  var label = el("div", {"class": "lane" + (lane[1] === 0 ? " first" : ""), "data-lane": lane[0] + "#" + lane[1], title: lane[0] + " slot " + (lane[1] + 1)},
    lane[1] === 0 ? lane[0] : "  slot " + (lane[1] + 1));
  $("lanes").appendChild(label); lanesOf.push([]);
});
var barSegs = D.bars.map(function () { return []; });
D.segs.forEach(function (s, i) { barSegs[s[0]].push(i); lanesOf[D.bars[s[0]][0]].push(i); });
lanesOf.forEach(function (list) { list.sort(function (a, b) { return D.segs[a][2] - D.segs[b][2]; }); });
var laneBars = D.lanes.map(function () { return []; });
D.bars.forEach(function (b, i) { laneBars[b[0]].push(i); });
var laneEnd = laneBars.map(function (list) { var e = 0; list.forEach(function (i) { e = Math.max(e, D.bars[i][2]); }); return e; });
var legend = $("legend");
["passed", "failed", "error", "skipped", "timeout", "crashed", "flaky", "not_run"].forEach(function (o) {
  var item = el("span"), dot = el("span", {"class": "dot"}); dot.style.background = COLOR[o];
  item.appendChild(dot); item.appendChild(document.createTextNode(o)); legend.appendChild(item);
});
Object.keys(MARKS).forEach(function (k) {
  var item = el("span", {"data-mark": k}), mk = el("span", {"class": "mk"}); mk.style.borderColor = MARKS[k][0];
  item.appendChild(mk); item.appendChild(document.createTextNode(MARKS[k][1])); legend.appendChild(item);
});
var idleItem = el("span"), idleMk = el("span", {"class": "mk"}); idleMk.style.borderColor = "#c9d1da"; idleMk.style.background = "repeating-linear-gradient(45deg,#eef1f4,#eef1f4 2px,#d6dce3 2px,#d6dce3 4px)";
idleItem.appendChild(idleMk); idleItem.appendChild(document.createTextNode("idle after the slot's last assignment")); legend.appendChild(idleItem);
var width = 0, scale = 1;
function x(t) { return t * scale; }
function hatch() {
  var p = document.createElement("canvas"); p.width = 6; p.height = 6;
  var c = p.getContext("2d"); c.fillStyle = "#eef1f4"; c.fillRect(0, 0, 6, 6);
  c.strokeStyle = "#d3d9e0"; c.lineWidth = 1.5; c.beginPath(); c.moveTo(0, 6); c.lineTo(6, 0); c.stroke();
  return ctx.createPattern(p, "repeat");
}
function draw() {
  var ratio = window.devicePixelRatio || 1;
  width = Math.max(200, box.clientWidth);
  var height = AXIS + D.lanes.length * ROW;
  canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  scale = (width - 8) / wall;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#5d6b7a"; ctx.strokeStyle = "#e3e8ee";
  var step = niceStep(wall / Math.max(2, Math.floor(width / 90)));
  for (var t = 0; t <= wall + 1e-9; t += step) {
    ctx.fillText(secs(t), x(t) + 2, 14);
    ctx.beginPath(); ctx.moveTo(x(t) + 0.5, 18); ctx.lineTo(x(t) + 0.5, height); ctx.stroke();
  }
  var first = D.bars.reduce(function (m, b) { return Math.min(m, b[1]); }, wall);
  if (D.bars.length && x(first) > 70) { ctx.fillStyle = "#8a9aa8"; ctx.fillText("collection and start-up, " + secs(first), 4, AXIS + 14); }
  var idle = hatch();
  D.lanes.forEach(function (lane, i) {
    var y = AXIS + i * ROW;
    if (lane[1] === 0) { ctx.fillStyle = "#b8c2cc"; ctx.fillRect(0, y, width, 1); }
    var e = laneEnd[i];
    ctx.fillStyle = idle; ctx.fillRect(x(e), y + 3, Math.max(0, x(wall) - x(e)), ROW - 6);
    if (x(wall) - x(e) > 60) { ctx.fillStyle = "#5d6b7a"; ctx.fillText("idle " + secs(wall - e), x(e) + 4, y + 15); }
  });
  D.bars.forEach(function (b, i) {
    var y = AXIS + b[0] * ROW + 2, w = Math.max(1, x(b[2]) - x(b[1]));
    ctx.fillStyle = "#e3e8ee"; ctx.fillRect(x(b[1]), y, w, ROW - 4);
    barSegs[i].forEach(function (si) {
      var s = D.segs[si], sx = x(s[2]), sw = Math.max(1, x(s[2] + s[3]) - sx);
      ctx.fillStyle = s[7] ? "#9aa6b2" : COLOR[OUT[s[4]]]; ctx.fillRect(sx, y + 3, sw, ROW - 10);
      if (s[7]) { ctx.fillStyle = "#5d6b7a"; ctx.fillRect(sx, y + 8, sw, 2); }
    });
    var marks = b[6];
    ctx.lineWidth = marks.length ? 2 : 1;
    ctx.strokeStyle = marks.length ? MARKS[marks[0]] ? MARKS[marks[0]][0] : "#333" : "#9aa6b2";
    ctx.strokeRect(x(b[1]) + 0.5, y + 0.5, w - 1, ROW - 5);
    marks.forEach(function (m, k) {
      if (!MARKS[m]) return;
      ctx.fillStyle = MARKS[m][0]; ctx.beginPath();
      var mx = x(b[1]) + 2 + k * 8; ctx.moveTo(mx, y); ctx.lineTo(mx + 7, y); ctx.lineTo(mx, y + 7); ctx.fill();
    });
  });
  ctx.lineWidth = 1;
}
function niceStep(raw) {
  var p = Math.pow(10, Math.floor(Math.log10(raw || 1))), n = raw / p;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
}
function segAt(lane, t, slack) {
  var list = lanesOf[lane] || [], lo = 0, hi = list.length - 1, best = -1;
  while (lo <= hi) { var mid = (lo + hi) >> 1; if (D.segs[list[mid]][2] <= t + slack) { best = mid; lo = mid + 1; } else hi = mid - 1; }
  for (var k = best; k >= 0 && k > best - 50; k--) { var s = D.segs[list[k]]; if (t <= s[2] + s[3] + slack) return list[k]; }
  return -1;
}
function barAt(lane, t) {
  var list = laneBars[lane] || [];
  for (var k = 0; k < list.length; k++) { var b = D.bars[list[k]]; if (b[1] <= t && t <= b[2]) return list[k]; }
  return -1;
}
function describe(lane, t) {
  var si = segAt(lane, t, 1 / scale), lines = [];
  if (si >= 0) {
    var s = D.segs[si], b = D.bars[s[0]];
    lines.push(T.id[s[1]], OUT[s[4]] + "  " + secs(s[3]) + (s[5] && s[6] > 1 ? "  (run " + s[5] + " of " + s[6] + ")" : "") + (s[7] ? "  FENCED: never counted" : ""),
      "worker " + D.names[s[8]] + "  node " + D.names[s[9]], "assignment " + b[3] + " attempt " + b[4] + " (" + b[5] + ")" + (b[6].length ? "  " + b[6].join(", ") : ""));
    return {text: lines.join("\n"), test: s[1]};
  }
  var bi = barAt(lane, t);
  if (bi >= 0) {
    var bb = D.bars[bi];
    return {text: "assignment " + bb[3] + " attempt " + bb[4] + " (" + bb[5] + ")" + (bb[6].length ? "  " + bb[6].join(", ") : "") +
      "\nworker " + D.names[bb[8]] + "  node " + D.names[bb[9]] + "\n" + bb[7] + " tests, " + secs(bb[1]) + " to " + secs(bb[2]), test: -1};
  }
  if (lane >= 0 && lane < D.lanes.length && t > laneEnd[lane]) return {text: D.lanes[lane][0] + " slot " + (D.lanes[lane][1] + 1) + ": idle for the last " + secs(wall - laneEnd[lane]), test: -1};
  return null;
}
function pointed(ev) {
  var r = canvas.getBoundingClientRect();
  return describe(Math.floor((ev.clientY - r.top - AXIS) / ROW), (ev.clientX - r.left) / scale);
}
var tip = $("tip");
canvas.addEventListener("mousemove", function (ev) {
  var d = pointed(ev);
  if (!d) { tip.style.display = "none"; return; }
  tip.textContent = d.text; tip.style.display = "block";
  tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 530) + "px"; tip.style.top = (ev.clientY + 14) + "px";
});
canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
canvas.addEventListener("click", function (ev) {
  var d = pointed(ev), pin = $("pinned");
  pin.textContent = ""; pin.className = "";
  if (!d) return;
  pin.appendChild(el("pre", null, d.text));
  if (d.test >= 0) pin.appendChild(detailsOf(d.test));
});
draw();
var resizing = 0;
window.addEventListener("resize", function () { clearTimeout(resizing); resizing = setTimeout(draw, 100); });

// --- figures and workers
var F = D.figures;
[["p50", secs(F.p50)], ["p95", secs(F.p95)], ["p99", secs(F.p99)], ["throughput", F.throughput.toFixed(1) + " tests/s"],
 ["tests run", F.ran], ["wall", secs(S.duration_s)]].forEach(function (f) {
  var d = el("div"); d.appendChild(el("b", null, f[1])); d.appendChild(el("span", null, f[0])); $("figs").appendChild(d);
});
var wt = $("workers"), wh = el("tr");
["worker", "slots", "busy", "utilization"].forEach(function (h, i) { wh.appendChild(el("th", i ? {"class": "num"} : null, h)); });
wh.appendChild(el("th")); wt.appendChild(wh);
D.workers.forEach(function (w) {
  var tr = el("tr", {"data-worker": w.name});
  tr.appendChild(el("td", {"class": "id"}, w.name)); tr.appendChild(el("td", {"class": "num"}, w.slots + (w.lanes > w.slots ? " (" + w.lanes + " lanes)" : "")));
  tr.appendChild(el("td", {"class": "num"}, secs(w.busy_s))); tr.appendChild(el("td", {"class": "num"}, (100 * w.utilization).toFixed(1) + " %"));
  var m = el("td"), meter = el("span", {"class": "meter"}), fill = el("i"); fill.style.width = Math.min(100, 100 * w.utilization) + "%";
  meter.appendChild(fill); m.appendChild(meter); tr.appendChild(m); wt.appendChild(tr);
});

// --- details of one test (traceback, captured output, its runs)
var runsOf = null;
function detailsOf(i) {
  var div = el("div", {"class": "detail"}), d = D.details[String(i)];
  if (T.m[i]) div.appendChild(el("p", null, T.m[i]));
  if (d) {
    if (d.blame) div.appendChild(el("p", null, "blame: " + d.blame + (d.crashed_on.length ? " (crashed on " + d.crashed_on.join(", ") + ")" : "")));
    if (d.longrepr) div.appendChild(el("pre", {"class": "longrepr"}, d.longrepr));
    d.sections.forEach(function (s) { div.appendChild(el("h4", null, s[0])); div.appendChild(el("pre", {"class": "section"}, s[1])); });
  }
  if (!runsOf) { runsOf = {}; D.segs.forEach(function (s, k) { (runsOf[s[1]] = runsOf[s[1]] || []).push(k); }); }
  (runsOf[i] || []).forEach(function (k) {
    var s = D.segs[k], b = D.bars[s[0]];
    div.appendChild(el("div", {"class": "muted"}, "run " + (s[5] || "?") + (s[6] ? " of " + s[6] : "") + ": " + OUT[s[4]] + " in " + secs(s[3]) + " on " +
      D.names[s[8]] + " (" + D.names[s[9]] + "), " + b[3] + "#" + b[4] + " at +" + secs(s[2]) + (s[7] ? ", fenced" : "")));
  });
  return div;
}

// --- failures, a page at a time
var failing = [];
for (var i = 0; i < N; i++) { var o = OUT[T.o[i]]; if (FAILING[o] || o === "flaky") failing.push(i); }
var failPage = 0, FAIL_PAGE = 25;
function pagerInto(where, page, per, total, go) {
  where.textContent = "";
  if (!total) { where.textContent = "none"; return; }
  var pages = Math.ceil(total / per);
  var prev = el("button", null, "‹ previous"), next = el("button", null, "next ›");
  prev.disabled = page === 0; next.disabled = page >= pages - 1;
  prev.onclick = function () { go(page - 1); }; next.onclick = function () { go(page + 1); };
  where.appendChild(prev); where.appendChild(document.createTextNode(" " + (page * per + 1) + "–" + Math.min(total, (page + 1) * per) + " of " + total + " ")); where.appendChild(next);
}
// a test's marks beside its id: QUARANTINED (it ran; its outcome does not count), its stage
var QUARANTINED = {};
(D.quarantined || []).forEach(function (q) { QUARANTINED[q.test_id] = true; });
function marksInto(where, i) {
  if (QUARANTINED[T.id[i]]) { where.appendChild(document.createTextNode(" ")); where.appendChild(el("span", {"class": "pill other", "data-mark": "quarantined", title: "quarantined: its outcome does not fail the suite"}, "QUARANTINED")); }
  if (T.s && T.s[i]) where.appendChild(el("span", {"class": "muted", "data-stage": T.s[i]}, " stage " + T.s[i]));
}
function showFailures(page) {
  failPage = page; var list = $("fail-list"); list.textContent = "";
  failing.slice(page * FAIL_PAGE, (page + 1) * FAIL_PAGE).forEach(function (i) {
    var det = el("details", {"data-test": T.id[i]}), sum = el("summary");
    sum.appendChild(badge(OUT[T.o[i]])); sum.appendChild(document.createTextNode(" " + T.id[i] + "  " + secs(T.d[i])));
    marksInto(sum, i); det.appendChild(sum); det.appendChild(detailsOf(i)); list.appendChild(det);
  });
  if (page === 0 && list.firstChild) list.firstChild.open = true;
  pagerInto($("fail-pager"), page, FAIL_PAGE, failing.length, showFailures);
}
showFailures(0);
if (!failing.length) $("fail-list").appendChild(el("p", {"class": "muted"}, "No failures."));

// --- every test: filter by outcome, search by text, a page at a time
var PER = 100, page = 0, matches = [], haystack = null, searching = 0;
function hay(i) {
  if (!haystack) {
    haystack = new Array(N);
    for (var k = 0; k < N; k++) {
      var d = D.details[String(k)], h = T.id[k] + "\n" + T.m[k];
      if (d) { h += "\n" + d.longrepr; d.sections.forEach(function (s) { h += "\n" + s[0] + "\n" + s[1]; }); }
      haystack[k] = h.toLowerCase();
    }
  }
  return haystack[i];
}
function update() {
  var f = filter.value, q = $("search").value.trim().toLowerCase();
  matches = [];
  for (var i = 0; i < N; i++) {
    var o = OUT[T.o[i]];
    if (f === "failing" ? !FAILING[o] : (f !== "all" && o !== f)) continue;
    if (q && hay(i).indexOf(q) < 0) continue;
    matches.push(i);
  }
  showRows(0);
}
function showRows(p) {
  page = p; var body = $("rows"); body.textContent = "";
  matches.slice(p * PER, (p + 1) * PER).forEach(function (i) {
    var tr = el("tr", {"class": "row", "data-test": T.id[i]});
    var ic = el("td", {"class": "id"}, T.id[i]); marksInto(ic, i); tr.appendChild(ic);
    var oc = el("td"); oc.appendChild(badge(OUT[T.o[i]])); tr.appendChild(oc);
    tr.appendChild(el("td", {"class": "num"}, secs(T.d[i]))); tr.appendChild(el("td", {"class": "num"}, T.n[i]));
    tr.appendChild(el("td", null, T.m[i].length > 160 ? T.m[i].slice(0, 160) + "…" : T.m[i]));
    tr.onclick = function () {
      var next = tr.nextSibling;
      if (next && next.className === "open") { body.removeChild(next); return; }
      var dr = el("tr", {"class": "open"}), td = el("td", {colspan: "5"}); td.appendChild(detailsOf(i)); dr.appendChild(td);
      body.insertBefore(dr, next);
    };
    body.appendChild(tr);
  });
  pagerInto($("pager"), p, PER, matches.length, showRows);
}
filter.onchange = update;
$("search").addEventListener("input", function () { clearTimeout(searching); searching = setTimeout(update, 200); });
update();

// --- slowest tests
var st = $("slow"), sh = el("tr");
["test", "outcome", "duration"].forEach(function (h, i) { sh.appendChild(el("th", i === 2 ? {"class": "num"} : null, h)); }); st.appendChild(sh);
F.slowest.forEach(function (i) {
  var tr = el("tr"); tr.appendChild(el("td", {"class": "id"}, T.id[i]));
  var oc = el("td"); oc.appendChild(badge(OUT[T.o[i]])); tr.appendChild(oc); tr.appendChild(el("td", {"class": "num"}, secs(T.d[i]))); st.appendChild(tr);
});

// --- resources per assignment, leaks, failure analysis (when the report has them)
function mb(b) { return b === null || b === undefined ? "" : (b / 1048576).toFixed(1) + " MiB"; }
var measured = D.bars.filter(function (b) { return b[10]; });
if (measured.length) {
  var rs = el("section", {id: "resources"}); rs.appendChild(el("h2", null, "Resources per assignment"));
  var rt = el("table"), rh = el("tr");
  ["assignment", "worker", "state", "tests", "wall", "peak RSS", "CPU"].forEach(function (h, i) { rh.appendChild(el("th", i > 2 ? {"class": "num"} : null, h)); }); rt.appendChild(rh);
  measured.sort(function (a, b) { return (b[10].peak_rss_bytes || 0) - (a[10].peak_rss_bytes || 0); }).slice(0, 500).forEach(function (b) {
    var tr = el("tr");
    [[b[3] + "#" + b[4], "id"], [D.names[b[8]], "id"], [b[5], ""], [b[7], "num"], [secs(b[2] - b[1]), "num"], [mb(b[10].peak_rss_bytes), "num"],
     [b[10].cpu_s === undefined || b[10].cpu_s === null ? "" : secs(b[10].cpu_s), "num"]].forEach(function (c) { tr.appendChild(el("td", c[1] ? {"class": c[1]} : null, c[0])); });
    rt.appendChild(tr);
  });
  rs.appendChild(rt); if (measured.length > 500) rs.appendChild(el("p", {"class": "muted"}, "the 500 largest of " + measured.length));
  $("optional-bottom").appendChild(rs);
}
if (Array.isArray(D.leaks) && D.leaks.length) listSection("optional-bottom", "leaks", "Leaks", D.leaks, ["test", "kind", "detail", "assignment", "attempt"]);
if (D.analysis && Array.isArray(D.analysis.classes) && D.analysis.classes.length) {
  var an = el("section", {id: "analysis"}); an.appendChild(el("h2", null, "Failure analysis"));
  D.analysis.classes.forEach(function (c) {
    var det = el("details", {"data-class": c["class"]}), sum = el("summary");
    sum.appendChild(el("b", null, c["class"])); sum.appendChild(document.createTextNode("  " + c.count + " test" + (c.count === 1 ? "" : "s")));
    det.appendChild(sum);
    (c.tests || []).slice(0, 200).forEach(function (t) { det.appendChild(el("div", {"class": "id"}, t)); });
    if (c.detail) det.appendChild(el("pre", null, JSON.stringify(c.detail, null, 2)));
    an.appendChild(det);
  });
  $("optional-bottom").appendChild(an);
}
document.body.setAttribute("data-rendered", "1");
document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
})();
</script>
</body>
</html>
"""
