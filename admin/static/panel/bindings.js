// The panel's event handlers, bound here from data attributes instead of inline
// `onsubmit=` / `onclick=` attributes: the Content-Security-Policy allows no inline
// script, so an inline handler would simply not run (and a confirmation would be skipped
// by nothing but a refusal to submit). Loaded on every panel page, after jQuery.
(function () {
  "use strict";

  // A form with `data-confirm` asks first: the row buttons, "Retry all N matching" and
  // the delete buttons of the management views.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) { return; }
    if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) { return; }

    // "With selected" → an action ("Retry selected"): Flask-Admin's actions.js posts the
    // ticked rows and asks for the action's confirmation itself.
    var action = target.closest("[data-model-action]");
    if (action) {
      event.preventDefault();
      if (window.modelActions) { window.modelActions.execute(action.dataset.modelAction); }
      return;
    }

    // Links that only open a menu or add a filter (Flask-Admin's bs4_filters.js listens
    // to them), and Flask-Admin's `javascript:void(0)` placeholders (the active tab, a
    // disabled page number): following one would navigate, or run a `javascript:` URL
    // the policy refuses.
    var inert = target.closest('a[data-inert], a[href^="javascript:"]');
    if (inert) { event.preventDefault(); }
  }, true);
})();
