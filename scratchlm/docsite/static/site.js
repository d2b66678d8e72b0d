// Hovering a symbol (in an equation, an Args line or the code) highlights every use of it in
// the same function; a symbol of the module's docstring highlights its uses on the whole page.
// Clicking a symbol of a MathML equation follows its href (Chromium does not follow MathML links
// itself), and a display equation wider than its column is scaled down to fit (to 60% at least).
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
  document.addEventListener("click", function (e) {
    var el = e.target.closest && e.target.closest("math [href]");
    if (!el) return;
    e.preventDefault();
    location.hash = el.getAttribute("href");
  });
  function fit() {
    document.querySelectorAll(".math-display").forEach(function (box) {
      var parts = box.querySelectorAll(":scope > math, :scope > .math-wrap > math, " +
                                     ":scope > .katex-display > .katex, :scope > .math-wrap > .katex-display > .katex");
      var room = box.clientWidth, lone = parts.length === 1;
      parts.forEach(function (part) {
        part.style.fontSize = "";
        var size = parseFloat(getComputedStyle(part).fontSize), scale = 1;
        // A part's ink can reach past its box (limits under \arg\max): shrink until the box scrolls no more.
        for (var k = 0; k < 4 && scale > 0.6; k++) {
          var over = (lone ? Math.max(part.getBoundingClientRect().width, box.scrollWidth)
                                : part.getBoundingClientRect().width) / room;
          if (over <= 1) break;
          scale = Math.max(scale / over * 0.99, 0.6);
          part.style.fontSize = (size * scale).toFixed(2) + "px";
        }
      });
    });
  }
  var pending = 0;
  window.addEventListener("resize", function () {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(fit);
  });
  if (document.fonts && document.fonts.ready) document.fonts.ready.then(fit);
  else window.addEventListener("load", fit);
})();
