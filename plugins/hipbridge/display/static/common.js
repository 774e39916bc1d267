/* Shared by the external data page (display.js) and the 互认 reminder page (remind.js): DOM helpers, the
   message box, and clearing what a refusal must not leave on screen. Served by hipbridge itself. */
(function () {
  "use strict";
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function clear(node) { while (node && node.firstChild) { node.removeChild(node.firstChild); } }
  function showMessage(text) {
    var m = document.getElementById("message");
    m.textContent = text;
    m.className = "message shown";
  }
  /* a refusal (401 re-launch, 403 revoked/expired): the named parts leave the page, the reason stays */
  function clearPage(ids, text) {
    ids.forEach(function (id) {
      var n = document.getElementById(id);
      if (n) { n.parentNode.removeChild(n); }
    });
    document.body.className += " cleared";
    showMessage(text);
  }
  window.hipbridgePage = { el: el, clear: clear, showMessage: showMessage, clearPage: clearPage };
})();
