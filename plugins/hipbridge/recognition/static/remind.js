/* 检查检验结果互认提醒: renders /shared/remind/items, posts /shared/remind/decide; served by hipbridge. */
(function () {
  "use strict";
  var body = document.body;
  var reasons = [];

  var P = window.hipbridgePage, el = P.el, clear = P.clear, showMessage = P.showMessage;   /* common.js */
  function clearPage(text) { P.clearPage(["content", "patient"], text); }

  function call(method, path, payload) {
    var opts = { method: method, credentials: "same-origin", cache: "no-store",
                 headers: { "Accept": "application/json" } };
    if (payload) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(payload); }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) { return data; }
        var msg = data.message || ("请求失败 (HTTP " + r.status + ")");
        if (r.status === 401 || (r.status === 403 && data.code !== "not_ordering_doctor")) {
          clearPage(msg);
        }
        var err = new Error(msg);
        err.status = r.status;
        throw err;
      });
    });
  }

  function setStatus(li, status, label) {
    li.className = li.className.replace(/ status-\d/g, "") + " status-" + status;
    li.setAttribute("data-status", status);
    li.querySelector(".status").textContent = label;
    li.querySelector("button.undo").hidden = !(status === "0" || status === "1");
    li.querySelector("button.undo").disabled = false;
    li.querySelector("button.cite").disabled = status === "1";
    li.querySelector("button.decline").disabled = status === "0";
  }

  function showDetail(box, d) {
    clear(box);
    if (d.kind === "lab" && d.results) {
      var t = el("table");
      var h = el("tr");
      ["项目", "结果", "单位", "参考范围"].forEach(function (x) { h.appendChild(el("th", null, x)); });
      t.appendChild(h);
      d.results.forEach(function (r) {
        var tr = el("tr");
        [r.name, r.value, r.unit, r.range].forEach(function (x) { tr.appendChild(el("td", null, x)); });
        t.appendChild(tr);
      });
      box.appendChild(t);
    } else {
      box.appendChild(el("div", null, "检查所见: " + (d.findings || "—")));
      box.appendChild(el("div", null, "检查结论: " + (d.conclusion || "—")));
    }
  }

  function render(it) {
    var li = el("li", "reminder kind-" + it.kind);
    li.setAttribute("data-remind-id", it.remindId);
    li.setAttribute("data-report-no", it.reportNo);
    var head = el("div", "head");
    head.appendChild(el("span", "kind", it.kindLabel));
    head.appendChild(el("span", "title", it.title));
    head.appendChild(el("span", "org", it.orgName));
    head.appendChild(el("span", "level", it.orgLevel));
    head.appendChild(el("span", "status", it.statusLabel));
    li.appendChild(head);
    var meta = el("div", "meta", "报告时间 " + it.reportTime + " · 报告号 " + it.reportNo + " · ");
    meta.appendChild(el("span", "valid", "有效期至 " + it.validUntil));
    if (it.orderCode) { meta.appendChild(document.createTextNode(" · 本次开单 " + it.orderCode)); }
    li.appendChild(meta);
    if (it.summary) { li.appendChild(el("div", "summary", it.summary)); }

    var actions = el("div", "actions");
    var view = el("button", "view", "查看");
    var cite = el("button", "cite", "互认 / 引用");
    var decline = el("button", "decline", "不互认");
    var ignore = el("button", "ignore", "忽略");
    var undo = el("button", "undo", "撤销");
    [view, cite, decline, ignore, undo].forEach(function (b) { b.type = "button"; actions.appendChild(b); });
    li.appendChild(actions);

    var form = el("div", "decline-form");
    var l1 = el("label", null, "不互认理由 ");
    var sel = el("select", "reason");
    sel.appendChild(el("option", null, "请选择理由"));
    sel.firstChild.value = "";
    reasons.forEach(function (r) {
      var o = el("option", null, r.code + " " + r.name);
      o.value = r.code;
      sel.appendChild(o);
    });
    l1.appendChild(sel);
    var l2 = el("label", null, "诊断 (理由 99 必填) ");
    var diag = el("input", "diag");
    diag.type = "text";
    diag.maxLength = 200;
    l2.appendChild(diag);
    var confirm = el("button", "confirm-decline", "确认不互认");
    confirm.type = "button";
    form.appendChild(l1);
    form.appendChild(l2);
    form.appendChild(confirm);
    li.appendChild(form);
    var error = el("div", "error");
    var note = el("div", "note-box");
    var detail = el("div", "detail");
    li.appendChild(error);
    li.appendChild(note);
    li.appendChild(detail);
    if (it.citation) { note.textContent = "病历引用: " + it.citation.text; }
    else if (it.reasonName) { note.textContent = "不互认理由: " + it.reasonName; }
    setStatus(li, it.status, it.statusLabel);

    function decide(payload) {
      error.textContent = "";
      [cite, confirm, ignore, undo].forEach(function (b) { b.disabled = true; });
      payload.remindId = it.remindId;
      return call("POST", "/shared/remind/decide", payload).then(function (out) {
        setStatus(li, out.status, out.statusLabel);
        if (out.citation) { note.textContent = "病历引用: " + out.citation.text; }
        else if (out.note) { note.textContent = out.note; }
        else if (out.status === "2") { note.textContent = ""; }
        form.className = "decline-form";
        li.setAttribute("data-done", String(Date.now()));
      }, function (e) {
        error.textContent = e.message;
        li.setAttribute("data-error", String(Date.now()));
      }).then(function () {
        [confirm, ignore].forEach(function (b) { b.disabled = false; });
        setStatus(li, li.getAttribute("data-status"), li.querySelector(".status").textContent);
      });
    }
    view.addEventListener("click", function () {
      call("GET", "/shared/report/" + encodeURIComponent(it.kind) + "/" + encodeURIComponent(it.reportId))
        .then(function (d) { showDetail(detail, d); }, function (e) { error.textContent = e.message; });
    });
    cite.addEventListener("click", function () { decide({ action: "recognize" }); });
    decline.addEventListener("click", function () { form.className = "decline-form open"; });
    confirm.addEventListener("click", function () {
      decide({ action: "decline", reasonCode: sel.value, diagName: diag.value });
    });
    ignore.addEventListener("click", function () { decide({ action: "ignore" }); });
    undo.addEventListener("click", function () { decide({ action: "undo" }); });
    return li;
  }

  function load() {
    call("GET", "/shared/remind/items").then(function (data) {
      reasons = data.reasons || [];
      var loading = document.getElementById("loading");
      if (loading) { loading.parentNode.removeChild(loading); }
      var list = document.getElementById("reminders");
      clear(list);
      if (!data.items.length) { list.appendChild(el("li", "empty", data.texts.none)); }
      data.items.forEach(function (it) { list.appendChild(render(it)); });
      var rest = document.getElementById("not-reminded");
      (data.notReminded || []).forEach(function (o) {
        rest.appendChild(el("li", null, "开单项目 " + o.code + ": " + data.texts.noneForOrder));
      });
      body.setAttribute("data-loaded", "1");
    }, function (e) {
      if (e.status === 503) { showMessage(e.message); }
      body.setAttribute("data-loaded", "1");
    });
  }
  load();
})();
