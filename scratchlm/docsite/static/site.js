// Hovering a symbol (in an equation, an Args line or the code) highlights every use of it in
// the same function; a symbol of the module's docstring highlights its uses on the whole page.
(function () {
  function scope(el) {
    var row = el.closest("section.row");
    return row && !row.classList.contains("module-doc") ? row : document;
  }
  function mark(el, on) {
    var name = el.getAttribute("data-sym");
    scope(el).querySelectorAll('[data-sym="' + CSS.escape(name) + '"]').forEach(function (x) {
      x.classList.toggle("hl", on);
    });
  }
  document.addEventListener("mouseover", function (e) {
    var el = e.target.closest && e.target.closest("[data-sym]");
    if (el) mark(el, true);
  });
  document.addEventListener("mouseout", function (e) {
    var el = e.target.closest && e.target.closest("[data-sym]");
    if (el) mark(el, false);
  });
})();
