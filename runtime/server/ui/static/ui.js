// Live updates for the operator's page: follow the log over SSE and re-render the part of
// the page marked #live from the server (which escapes everything). A form someone is
// filling in is never replaced under them: a notice offers the refresh instead.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var dirty = false, timer = null, busy = false, again = false, notice = null;
  var RUN_ENDS = ["RunSucceeded", "RunFailed", "RunCompensated", "RunCancelled", "RunNeedsAttention"];
  var TYPES = ["RunStarted", "StepStarted", "StepSucceeded", "StepFailed", "StepAttemptFailed",
    "StepSkipped", "StepCancelled", "GateOpened", "GateDecided", "GateEscalated", "EscalationOpened",
    "EscalationResolved", "WaitOpened", "WaitSatisfied", "EventRejected", "EventRejectionDismissed",
    "RunCompensating", "ModelCalled"].concat(RUN_ENDS);

  live.addEventListener("input", function () { dirty = true; });

  function showNotice() {
    if (notice) { return; }
    notice = document.createElement("p");
    notice.className = "stale";
    notice.setAttribute("role", "status");
    notice.textContent = "Something changed.";
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Show it";
    button.addEventListener("click", function () { dirty = false; refresh(); });
    notice.appendChild(button);
    live.parentNode.insertBefore(notice, live.nextSibling);
  }

  function refresh() {
    if (busy) { again = true; return; }
    if (dirty) { showNotice(); return; }
    busy = true;
    fetch(live.getAttribute("data-live"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && !dirty) {
          live.innerHTML = html;
          if (notice) { notice.remove(); notice = null; }
          document.dispatchEvent(new CustomEvent("aiosrun:updated"));
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  function soon() { clearTimeout(timer); timer = setTimeout(refresh, 150); }

  var stream = new EventSource(live.getAttribute("data-events"));
  TYPES.forEach(function (type) {
    stream.addEventListener(type, function () {
      soon();
      if (live.hasAttribute("data-finished") && RUN_ENDS.indexOf(type) >= 0) { stream.close(); }
    });
  });
  // a step in flight grows on the timeline even while no record arrives
  if (live.getAttribute("data-finished") === "no") {
    var ticking = setInterval(function () {
      var facts = live.querySelector(".run-facts");
      var status = facts ? facts.getAttribute("data-status") : "";
      if (status === "running") { refresh(); }
      else if (status !== "waiting") { clearInterval(ticking); }
    }, 2000);
  }
})();
