// Keeps a page's retry state current without a reload: plain JavaScript polling the
// product's JSON status endpoints (no framework). Text is set with textContent only.
(function () {
  "use strict";
  var EVERY_MS = 1500;

  function poll(url, apply, settled) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body === null) { return; }  // refused or gone: stop, the page stays as it is
        apply(body);
        if (!settled(body)) { window.setTimeout(function () { poll(url, apply, settled); }, EVERY_MS); }
      })
      .catch(function () { window.setTimeout(function () { poll(url, apply, settled); }, EVERY_MS * 4); });
  }

  function setText(element, text) { if (element) { element.textContent = text; } }

  // A bulk retry's page: counts, state, and each row's outcome.
  var batch = document.getElementById("retry-batch");
  if (batch && batch.dataset.state !== "done") {
    poll(batch.dataset.statusUrl, function (body) {
      batch.dataset.state = body.state;
      setText(document.querySelector("[data-batch-state]"), body.state);
      ["total", "queued", "succeeded", "rejected", "failed"].forEach(function (name) {
        setText(batch.querySelector('[data-batch-count="' + name + '"]'), String(body[name]));
      });
      (body.items || []).forEach(function (item) {
        var row = batch.querySelector('[data-batch-item="' + CSS.escape(item.execution_id) + '"]');
        if (!row || row.dataset.itemState === item.state) { return; }
        row.dataset.itemState = item.state;
        setText(row.querySelector('[data-item-field="state"]'), item.state);
        var outcome = row.querySelector('[data-item-field="outcome"]');
        if (item.successor_execution_id) {
          var link = document.createElement("a");
          link.href = batch.dataset.detailsUrl + "?id=" + encodeURIComponent(item.successor_execution_id);
          link.dataset.successor = item.successor_execution_id;
          link.textContent = item.successor_execution_id;
          outcome.textContent = "new execution ";
          outcome.appendChild(link);
        } else if (item.error) {
          outcome.textContent = (item.status_code || "") + " " + item.error +
            (item.ops_hint ? " — " + item.ops_hint : "");
        }
      });
    }, function (body) { return body.state === "done"; });
  }

  // A row's queued retry request (the list and the detail page): its state once settled.
  document.querySelectorAll("[data-retry-request-id]").forEach(function (badge) {
    var url = badge.dataset.statusUrl;
    if (!url) { return; }
    poll(url, function (body) {
      badge.dataset.retryRequestState = body.state;
      if (body.state === "succeeded") {
        badge.className = "badge badge-success mr-1";
        setText(badge, "Retried: new execution " + String(body.execution_id).slice(0, 8) + "…");
      } else if (body.state !== "queued") {
        badge.className = "badge badge-danger mr-1";
        setText(badge, "Retry " + body.state + ": " + (body.error || ""));
      }
    }, function (body) { return body.state !== "queued"; });
  });
})();
