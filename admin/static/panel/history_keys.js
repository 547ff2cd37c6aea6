// Purchase History's keyboard shortcuts, ignored while typing in a field:
//   /      focus the search box
//   j / k  move the highlight to the next / previous row
//   Enter  open the highlighted row's details
//   ?      show or hide this list (Esc hides it)
// Loaded by panel/purchases_list.html only; no inline script (the CSP forbids it).
(function () {
  "use strict";

  var current = -1;

  function rows() {
    return Array.prototype.slice.call(
      document.querySelectorAll("table.model-list > tbody > tr")
    ).filter(function (row) { return row.querySelector("[data-row-actions]"); });
  }

  function typing(target) {
    return target instanceof HTMLElement && (
      target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)
    );
  }

  // Enter on a link, a button or a copyable id does what that element does.
  function actsOnEnter(target) {
    return target instanceof Element && target.closest("a, button, [role=button]") !== null;
  }

  function highlight(index) {
    var all = rows();
    if (all.length === 0) { return; }
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, at) {
      var on = at === current;
      row.classList.toggle("row-highlight", on);
      if (on) { row.setAttribute("aria-current", "true"); } else { row.removeAttribute("aria-current"); }
    });
    all[current].scrollIntoView({ block: "nearest" });
  }

  function openHighlighted() {
    var row = rows()[current];
    var link = row && row.querySelector('a[href*="/details/"]');
    if (link) { window.location.assign(link.href); }
  }

  function toggleHelp(show) {
    var help = document.querySelector("[data-keyboard-help]");
    if (!help) { return; }
    var visible = show === undefined ? help.hidden : show;
    help.hidden = !visible;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) { return; }
    if (event.key === "Escape") { toggleHelp(false); }
    if (typing(event.target)) { return; }
    switch (event.key) {
      case "/":
        var search = document.querySelector('form[role="search"] input[name="search"]');
        if (search) { event.preventDefault(); search.focus(); search.select(); }
        break;
      case "j":
        highlight(current + 1);
        break;
      case "k":
        highlight(current < 0 ? 0 : current - 1);
        break;
      case "Enter":
        if (current >= 0 && !actsOnEnter(event.target)) { event.preventDefault(); openHighlighted(); }
        break;
      case "?":
        toggleHelp();
        break;
      default:
        return;
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (target && target.closest("[data-keyboard-help-close]")) { toggleHelp(false); }
  });
})();
