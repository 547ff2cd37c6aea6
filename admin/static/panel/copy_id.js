// Short ids (`data-copy-id`, admin/formatting.py's id_chip): one click, or Enter / Space
// on a focused one, copies the whole id to the clipboard and says so for a moment
// (`data-copied`). Bound here, not inline: the Content-Security-Policy runs no inline
// script. Loaded on every panel page.
(function () {
  "use strict";

  function copied(chip) {
    chip.dataset.copied = "true";
    window.setTimeout(function () { delete chip.dataset.copied; }, 1500);
  }

  // Without the asynchronous clipboard (a page not served from a secure context): copy
  // a selected, off-screen textarea the old way.
  function copyBySelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "copy-buffer";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (error) { done = false; }
    document.body.removeChild(area);
    return done;
  }

  function copy(chip) {
    var text = chip.dataset.copyId;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(chip); },
        function () { if (copyBySelection(text)) { copied(chip); } }
      );
    } else if (copyBySelection(text)) {
      copied(chip);
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var chip = target && target.closest("[data-copy-id]");
    if (chip) {
      event.preventDefault();
      copy(chip);
    }
  });

  document.addEventListener("keydown", function (event) {
    var chip = event.target instanceof Element ? event.target.closest("[data-copy-id]") : null;
    if (chip && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      event.stopPropagation();
      copy(chip);
    }
  });
})();
