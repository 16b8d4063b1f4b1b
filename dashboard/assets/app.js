// orca-sync dashboard: swaps in the live part of the page that the server
// renders and sends as server-sent events, says when serve is unreachable,
// and draws the canary's figures as they come (docs/guides/dashboard.md).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  var points = [];
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    return e;
  }

  function line(svg, key, cls, top, w, h) {
    var d = "";
    points.forEach(function (p, i) {
      var x = points.length === 1 ? w : w * i / (points.length - 1);
      var y = h - 2 - (h - 4) * (top > 0 ? p[key] / top : 0);
      d += (i ? " " : "") + x.toFixed(1) + "," + y.toFixed(1);
    });
    svg.appendChild(el("polyline", { points: d, "class": cls, "vector-effect": "non-scaling-stroke" }));
  }

  function span(cls, text) {
    var s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  }

  // plot draws the canary's and the stable's series of one figure; the
  // text is HTML, so that the stretched SVG does not stretch it.
  function plot(holder, title, keys, unit, scale) {
    var w = 300, h = 60, top = 0;
    points.forEach(function (p) { top = Math.max(top, p[keys[0]], p[keys[1]]); });
    var fig = document.createElement("figure");
    var cap = document.createElement("figcaption");
    cap.appendChild(span("", title + " · max " + (top * scale).toFixed(1) + unit + " · "));
    cap.appendChild(span("k-canary", "canary"));
    cap.appendChild(span("", " / "));
    cap.appendChild(span("k-stable", "stable"));
    fig.appendChild(cap);
    var svg = el("svg", { viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none" });
    svg.appendChild(el("line", { x1: 0, y1: h - 1, x2: w, y2: h - 1, "class": "axis", "vector-effect": "non-scaling-stroke" }));
    line(svg, keys[1], "stable", top, w, h);
    line(svg, keys[0], "canary", top, w, h);
    fig.appendChild(svg);
    holder.appendChild(fig);
  }

  function chart() {
    var holder = live && live.querySelector("[data-chart]");
    if (!holder) { return; }
    var p = {};
    ["cp95", "sp95", "cerr", "serr", "step"].forEach(function (k) {
      p[k] = parseFloat(holder.getAttribute("data-" + k)) || 0;
    });
    points.push(p);
    if (points.length > 60) { points.shift(); }
    holder.textContent = "";
    holder.setAttribute("data-points", String(points.length));
    plot(holder, "p95 latency", ["cp95", "sp95"], " ms", 1);
    plot(holder, "error rate", ["cerr", "serr"], "%", 100);
  }

  function show(msg) {
    if (msg) { conn.textContent = msg; }
    conn.hidden = !msg;
    document.body.classList.toggle("offline", !!msg);
  }

  function swap(html) {
    var focused = document.activeElement && document.activeElement.id;
    var open = [];
    live.querySelectorAll("details[open] summary").forEach(function (s) { open.push(s.textContent); });
    live.innerHTML = html;
    live.querySelectorAll("details summary").forEach(function (s) {
      if (open.indexOf(s.textContent) >= 0) { s.parentNode.open = true; }
    });
    if (focused) {
      var f = document.getElementById(focused);
      if (f) { f.focus(); }
    }
    chart();
  }

  function connect() {
    var es = new EventSource(url);
    es.addEventListener("open", function () { show(""); });
    es.addEventListener("update", function (e) { show(""); swap(e.data); });
    es.addEventListener("signedout", function () {
      es.close();
      show("Signed out: reload the page to sign in again.");
    });
    es.addEventListener("error", function () {
      show("serve unreachable: retrying…");
      if (es.readyState === EventSource.CLOSED) {
        // Refused, not dropped: after a restart of serve the session is gone.
        fetch(location.href, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
          if (r.headers.get("X-Orca-Signin")) { show("Signed out: reload the page to sign in again."); return; }
          setTimeout(connect, 2000);
        }, function () { setTimeout(connect, 2000); });
      }
    });
  }

  if (url && live && window.EventSource) {
    chart();
    connect();
  }
})();
