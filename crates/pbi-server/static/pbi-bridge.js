// Behaviour the pages declare in attributes, since the Content-Security-Policy (script-src 'self') allows no
// inline script or handler: a form with data-confirm asks first; a link with data-back goes back when there
// is a page to go back to (and otherwise follows its href).
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a[data-back]") : null;
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
