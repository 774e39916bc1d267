/* 外院数据展示: renders /shared/timeline and /shared/report/{kind}/{id}; read-only; served by hipbridge. */
(function () {
  "use strict";
  var body = document.body;
  var pollSeconds = parseInt(body.getAttribute("data-poll") || "30", 10);
  var timer = null;
  var cleared = false;

  var P = window.hipbridgePage, el = P.el, clear = P.clear, showMessage = P.showMessage;   /* common.js */
  function svg(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  /* a refusal (401 re-launch, 403 revoked/expired): nothing of the patient stays on screen */
  function clearPage(text) {
    cleared = true;
    if (timer) { clearInterval(timer); timer = null; }
    P.clearPage(["timeline", "detail", "patient", "content", "watermark"], text);
  }

  function api(path) {
    return fetch(path, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (r.ok) { return data; }
          var msg = data.message || ("请求失败 (HTTP " + r.status + ")");
          if (r.status === 401 || r.status === 403) { clearPage(msg); }
          else if (r.status === 503) { storeDown(msg); }
          else { showMessage(msg); }
          throw new Error(msg);
        });
      });
  }
  function storeDown(msg) {
    var t = document.getElementById("timeline"), d = document.getElementById("detail");
    if (t) { clear(t); t.appendChild(el("p", "unavailable", msg)); }
    if (d) { clear(d); }
    showMessage(msg);
  }

  function badges(it, full) {
    var b = el("div", "badges");
    if (it.hr) { b.appendChild(el("span", "badge hr", it.hrMark)); }
    if (it.validity) { b.appendChild(el("span", "badge valid", it.validity)); }
    if (it.critical) { b.appendChild(el("span", "badge crit", "危急值")); }
    else if (it.abnormal) { b.appendChild(el("span", "badge abn", "有异常")); }
    if (it.image) { b.appendChild(el("span", "badge img", "有影像")); }
    var qc = it.qc || [];
    if (full) {
      qc.forEach(function (q) { b.appendChild(el("span", "badge qc", "质控: " + q)); });
    } else if (qc.length) {   /* the list is in the detail panel */
      var s = el("span", "badge qc", qc.length === 1 && qc[0].length <= 12 ? "质控: " + qc[0] : "质控提示 " + qc.length + " 条");
      s.title = qc.join("\n");
      b.appendChild(s);
    }
    return b;
  }

  function renderTimeline(data) {
    var t = document.getElementById("timeline");
    clear(t);
    if (data.messages.tampered) {   /* rows that failed their integrity check: named, never shown as data */
      var w = el("p", "tampered", data.messages.tampered);
      w.title = (data.tampered || []).map(function (x) { return x.orgName + " · " + x.kindLabel; }).join("\n");
      t.appendChild(w);
    }
    if (!data.groups.length) { t.appendChild(el("p", "empty", data.messages.noData)); return; }
    data.groups.forEach(function (g) {
      var sec = el("section", "group");
      sec.setAttribute("data-org", g.orgCode);
      var h = el("h2", null, g.orgName);
      h.appendChild(el("span", "level", g.orgLevel));
      sec.appendChild(h);
      var ol = el("ol", "items");
      g.items.forEach(function (it) {
        var li = el("li", "item kind-" + it.kind + (it.abnormal ? " abnormal" : "") + (it.critical ? " critical" : ""));
        li.setAttribute("data-kind", it.kind);
        li.setAttribute("data-id", it.id);
        li.setAttribute("tabindex", "0");
        var head = el("div", "head");
        head.appendChild(el("time", null, it.time));
        head.appendChild(el("span", "kind", it.kindLabel));
        head.appendChild(el("span", "title", it.title));
        li.appendChild(head);
        li.appendChild(el("div", "summary", it.summary));
        li.appendChild(badges(it));
        li.addEventListener("click", function () { openReport(it.kind, it.id, li); });
        ol.appendChild(li);
      });
      sec.appendChild(ol);
      t.appendChild(sec);
    });
  }

  function row(table, cells, cls, header) {
    var tr = el("tr", cls);
    cells.forEach(function (c) { tr.appendChild(el(header ? "th" : "td", null, c === null || c === undefined ? "" : c)); });
    table.appendChild(tr);
  }
  function section(parent, title, text) {
    var s = el("div", "section");
    s.appendChild(el("h4", null, title));
    s.appendChild(el("div", "text", text || "—"));
    parent.appendChild(s);
    return s;
  }

  function trendChart(s) {
    var W = 420, H = 150, L = 44, R = 12, T = 14, B = 30;
    var vals = s.points.map(function (p) { return p.value; });
    var lo = Math.min.apply(null, vals.concat(s.low !== null ? [s.low] : []));
    var hi = Math.max.apply(null, vals.concat(s.high !== null ? [s.high] : []));
    if (hi === lo) { hi = lo + 1; }
    var pad = (hi - lo) * 0.1; lo -= pad; hi += pad;
    function x(i) { return L + (s.points.length === 1 ? 0 : i * (W - L - R) / (s.points.length - 1)); }
    function y(v) { return T + (hi - v) * (H - T - B) / (hi - lo); }
    var root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
                            "aria-label": s.name + " 趋势", "class": "trend-chart", "data-code": s.code });
    if (s.low !== null && s.high !== null) {
      root.appendChild(svg("rect", { "class": "band", x: L, y: y(s.high), width: W - L - R, height: Math.max(y(s.low) - y(s.high), 1) }));
    }
    var pts = s.points.map(function (p, i) { return x(i).toFixed(1) + "," + y(p.value).toFixed(1); }).join(" ");
    root.appendChild(svg("polyline", { "class": "line", points: pts }));
    s.points.forEach(function (p, i) {
      var c = svg("circle", { "class": "pt" + (p.critical ? " critical" : p.abnormal ? " abnormal" : ""), cx: x(i).toFixed(1),
                              cy: y(p.value).toFixed(1), r: 4 });
      var tip = svg("title", {}); tip.textContent = p.time + " " + p.value + " " + (s.unit || "") + " · " + p.orgName;
      c.appendChild(tip);
      root.appendChild(c);
      var anchor = s.points.length > 1 && i === s.points.length - 1 ? "end" : i === 0 ? "start" : "middle";
      var lab = svg("text", { x: x(i).toFixed(1), y: H - 12, "text-anchor": anchor });
      lab.textContent = (p.time || "").slice(0, 10);
      root.appendChild(lab);
    });
    [hi - pad, lo + pad].forEach(function (v) {
      var t = svg("text", { x: 4, y: y(v) + 4 }); t.textContent = (Math.round(v * 100) / 100).toString(); root.appendChild(t);
    });
    return root;
  }

  function renderDetail(d) {
    var box = document.getElementById("detail");
    clear(box);
    var h = el("h3", null, d.title);
    box.appendChild(h);
    var meta = el("div", "meta", d.orgName + " (" + d.orgLevel + ") · " + d.kindLabel + " · 报告时间 " + (d.time || "—"));
    box.appendChild(meta);
    box.appendChild(badges(d, true));
    if (d.kind === "lab") {
      var tb = el("table", "results");
      row(tb, ["项目", "结果", "单位", "参考范围", "标志"], null, true);
      d.results.forEach(function (r) {
        var mark = r.critical ? "危急" : r.high ? "↑" : r.low ? "↓" : r.abnormal ? "异常" : "";
        row(tb, [r.name, r.value, r.unit, r.range, mark], r.critical ? "critical" : r.abnormal ? "abnormal" : "");
      });
      box.appendChild(tb);
      if (d.trends.length) {
        var tr = el("div", "trends");
        tr.appendChild(el("h4", null, "趋势 (同一项目多次检测)"));
        d.trends.forEach(function (s) {
          var w = el("div", "trend");
          w.appendChild(el("div", "trend-title", s.name + (s.unit ? " (" + s.unit + ")" : "")));
          w.appendChild(trendChart(s));
          tr.appendChild(w);
        });
        box.appendChild(tr);
      }
    } else if (d.kind === "exam") {
      section(box, "检查部位 / 方法", [d.part, d.modality].filter(Boolean).join(" · "));
      section(box, "检查所见", d.findings);
      section(box, "检查结论", d.conclusion);
      if (d.imageUrl) {
        var a = el("a", "image-link", "查看影像 (外院影像服务)");
        a.href = d.imageUrl; a.target = "_blank"; a.rel = "noopener noreferrer";
        box.appendChild(a);
      }
    } else if (d.kind === "visit") {
      section(box, "就诊科室", d.dept);
      section(box, "诊断", (d.diagnoses || []).join("、"));
      section(box, "主诉", d.complaint);
      section(box, "处理意见", d.treatment);
    } else if (d.kind === "rx") {
      section(box, "诊断", d.diagnosis);
      var t2 = el("table", "rx");
      row(t2, ["药品", "规格", "每次剂量", "频次", "途径", "天数", "数量"], null, true);
      d.items.forEach(function (i) {
        row(t2, [i.drug, i.spec, [i.dose, i.dose_unit].filter(Boolean).join(" "), i.frequency, i.route, i.days,
                 [i.quantity, i.quantity_unit].filter(Boolean).join(" ")]);
      });
      box.appendChild(t2);
    }
  }

  function openReport(kind, id, li) {
    if (cleared) { return; }
    Array.prototype.forEach.call(document.querySelectorAll(".item.selected"), function (n) { n.className = n.className.replace(" selected", ""); });
    if (li) { li.className += " selected"; }
    api("/shared/report/" + encodeURIComponent(kind) + "/" + encodeURIComponent(id)).then(renderDetail, function () {});
  }

  function load() {
    api("/shared/timeline").then(function (data) {
      renderTimeline(data);
      var wm = document.getElementById("watermark");
      if (wm && data.watermark) { Array.prototype.forEach.call(wm.children, function (s) { s.textContent = data.watermark; }); }
      body.setAttribute("data-loaded", "1");
    }, function () { body.setAttribute("data-loaded", "1"); });
  }

  document.addEventListener("keydown", function (e) {
    if (body.className.indexOf("no-print") >= 0 && (e.ctrlKey || e.metaKey) && (e.key === "p" || e.key === "P")) {
      e.preventDefault();
      showMessage(body.getAttribute("data-print-msg"));
    }
  });
  document.addEventListener("contextmenu", function (e) { if (body.className.indexOf("no-print") >= 0) { e.preventDefault(); } });

  load();
  timer = setInterval(function () { if (!cleared) { api("/shared/status").then(function () {}, function () {}); } },
                      Math.max(pollSeconds, 1) * 1000);
})();
