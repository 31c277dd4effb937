// Behaviour the pages declare in attributes, since the Content-Security-Policy (script-src 'self') allows no
// inline script or handler: a form with data-confirm asks first; a link with data-back goes back when there
// is a page to go back to (and otherwise follows its href); a <time data-local> (written in UTC by the server)
// is shown in the reader's own time zone, its title keeping the UTC time; an empty <input data-local-zone> is
// filled with the reader's IANA time zone (the pin dialog's default); a button with data-copy copies the text of
// the element it names and says so; the connect page's result is posted to the app's window that opened it.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
document.addEventListener("click", (event) => {
  const copy = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
  const source = copy ? document.getElementById(copy.dataset.copy) : null;
  if (copy && source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => {
      copy.textContent = "Copied";
    }, () => {
      copy.textContent = "Select and copy";
    });
  }
  const link = event.target instanceof Element ? event.target.closest("a[data-back]") : null;
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
function localTimes() {
  // "1 Dec 2026, 23:11" in the reader's zone and their locale's order, with the zone's short name.
  const format = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  for (const time of document.querySelectorAll("time[data-local]")) {
    const at = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      time.textContent = format.format(at);
      time.dataset.localised = "true";
    }
  }
}
function localZones() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const input of document.querySelectorAll("input[data-local-zone]")) {
    if (!input.value && zone) {
      input.value = zone;
    }
  }
}
// The connect page's result, for the app's window that opened it (the SDK's popup): posted only to the app's
// allowed origins, which a browser delivers only if the opener is on one of them.
function reportConnectResult() {
  const result = document.getElementById("connect-result");
  if (!result || !window.opener) {
    return;
  }
  const message = {
    source: "pbi-bridge",
    type: "connect-result",
    status: result.dataset.status,
    sessionId: result.dataset.sessionId,
    connectionId: result.dataset.connectionId || null,
    message: result.dataset.message,
  };
  for (const origin of (result.dataset.origins || "").split(" ").filter(Boolean)) {
    window.opener.postMessage(message, origin);
  }
}
function localise() {
  localTimes();
  localZones();
  reportConnectResult();
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", localise);
} else {
  localise();
}
