// Your settings: offer the browser's own time zone (when the list has it) as a one-click
// choice. It only picks the option; Save still posts the form, checked on the server.
(function () {
  "use strict";
  var button = document.querySelector("[data-browser-zone]");
  var select = document.querySelector("[data-time-zone]");
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (error) { zone = ""; }
  if (!button || !select || !zone) { return; }
  var known = Array.prototype.some.call(select.options, function (option) { return option.value === zone; });
  if (!known || select.value === zone) { return; }
  button.textContent = "Use this browser's zone (" + zone + ")";
  button.hidden = false;
  button.addEventListener("click", function () { select.value = zone; button.hidden = true; });
})();
