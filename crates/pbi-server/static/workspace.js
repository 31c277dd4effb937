// Draws a workspace's pinned tiles and lays them out. Each frame is one Power BI tile embed, driven with the messages
// powerbi-client sends (POST /tile/load, then /tile/token to renew), posted directly: the library itself
// accepts only https *.powerbi.com URLs, and these are the same messages.
// The messages carry the user's Power BI token, so each goes to its frame's embed origin only (the server
// framed only tiles on the configured Power BI's embed host, and says which origin in data-embed-origin):
// should the frame hold anything else by then, the browser drops the message. Only messages from a tile's
// own frame, from that origin, are answered.
"use strict";
const tiles = document.getElementById("tiles");
const workspace = tiles.dataset.workspace;
const company = document.getElementById("company").value;
const frames = [...document.querySelectorAll("iframe.tile-frame")];

// The grid has as many columns as fit at the stylesheet's --tile-min width (one on a phone); each tile spans as
// many rows and columns as Power BI gives it, but never more columns than the grid has (the CSP allows styles
// set from this file through the CSSOM, not in the markup).
function layout() {
  const style = getComputedStyle(tiles);
  const min = parseFloat(style.getPropertyValue("--tile-min")) || 230;
  const gap = parseFloat(style.columnGap) || 0;
  const columns = Math.max(1, Math.floor((tiles.clientWidth + gap) / (min + gap)));
  tiles.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
  for (const tile of tiles.querySelectorAll(".tile")) {
    tile.style.gridColumn = `span ${Math.min(columns, Math.max(1, Number(tile.dataset.cols) || 1))}`;
    tile.style.gridRow = `span ${Math.max(1, Number(tile.dataset.rows) || 1)}`;
  }
  tiles.dataset.columns = String(columns);
}
layout();
window.addEventListener("resize", layout);

// A tile's menu (reorder, unpin) closes when another opens, or on Escape, which gives the focus back to it.
for (const menu of tiles.querySelectorAll("details.tile-menu")) {
  menu.addEventListener("toggle", () => {
    if (menu.open) for (const other of tiles.querySelectorAll("details.tile-menu[open]")) if (other !== menu) other.open = false;
  });
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
}

// The company filter offers the companies found in these tiles (their datasets' Company[ID] values, asked of
// Power BI), and says so when the filter set matches none of them. The page does not wait for this.
async function companies() {
  if (!frames.length) return;
  const note = document.getElementById("company-note");
  const say = (text) => {
    note.querySelector("p").textContent = text;
    note.hidden = false;
  };
  try {
    const response = await fetch(`/api/v1/workspaces/${workspace}/companies`, { credentials: "same-origin" });
    const found = await response.json();
    if (!response.ok) throw new Error((found.error || {}).message || response.statusText);
    const list = document.getElementById("company-list");
    list.replaceChildren(...found.companies.map((id) => Object.assign(document.createElement("option"), { value: id })));
    tiles.dataset.companies = found.companies.join(",");
    if (found.filterFound === false) {
      say(found.companies.length
        ? `No tile here has data for company ${found.companyFilter}. The companies in these tiles: ${found.companies.join(", ")}.`
        : `No tile here has data for company ${found.companyFilter}: their datasets have no Company table with an ID column.`);
    } else if (found.notAsked.length) {
      say(`Power BI would not list the companies of ${found.notAsked.map((t) => t.title).join(", ")}: ${found.notAsked[0].reason}`);
    }
  } catch (e) {
    say(`The companies in these tiles could not be listed: ${e.message}`);
  }
}
companies();

window.addEventListener("message", (event) => {
  const frame = frames.find((f) => f.contentWindow === event.source);
  const m = event.data;
  if (!frame || event.origin !== frame.dataset.embedOrigin || !m || typeof m.url !== "string" || !m.windowPostMessageProxy) return;
  // powerbi-client's events: POST /tile/{uid}/events/{name} (loaded, rendered, error).
  frame.dataset.state = m.url.split("/").pop();
  event.source.postMessage({ statusCode: 202, headers: {}, body: {}, windowPostMessageProxy: m.windowPostMessageProxy }, event.origin);
});

async function token(pin) {
  // The JSON API's tile token operation, as the signed-in user (the session cookie).
  const response = await fetch(`/api/v1/workspaces/${workspace}/pins/${pin}/token`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(((await response.json()).error || {}).message || response.statusText);
  return response.json();
}

function post(frame, url, body) {
  const message = { method: "POST", url, headers: { uid: frame.dataset.pin }, body, windowPostMessageProxy: { id: Math.random().toString(36).slice(2) } };
  frame.contentWindow.postMessage(message, frame.dataset.embedOrigin);
}

/// The tile could not be drawn: say why in its place.
function fail(frame, message) {
  frame.dataset.state = "error";
  const note = document.createElement("p");
  note.className = "tile-error";
  note.textContent = message;
  frame.hidden = true;
  frame.after(note);
}

for (const frame of frames) {
  frame.addEventListener("load", async () => {
    try {
      const t = await token(frame.dataset.pin);
      const filters = company ? [{ $schema: "http://powerbi.com/product/schema#basic", target: { table: "Company", column: "ID" }, operator: "In", values: [company] }] : [];
      post(frame, "/tile/load", { type: "tile", tokenType: 0, accessToken: t.accessToken, embedUrl: frame.dataset.embedUrl, id: frame.dataset.tile, dashboardId: frame.dataset.dashboard, filters });
      // Hand the frame a fresh token before the current one expires; if that fails, say so and try again in a minute.
      const renew = async () => {
        try {
          const next = await token(frame.dataset.pin);
          post(frame, "/tile/token", next.accessToken);
          frame.dataset.renewals = String(Number(frame.dataset.renewals || 0) + 1);
          delete frame.dataset.renewError;
          setTimeout(renew, Math.max(60, next.renewInSeconds) * 1000);
        } catch (e) {
          frame.dataset.renewError = String(e.message);
          setTimeout(renew, 60 * 1000);
        }
      };
      setTimeout(renew, Math.max(60, t.renewInSeconds) * 1000);
    } catch (e) {
      fail(frame, String(e.message));
    }
  }, { once: true });
  // As powerbi-client does: listen first, then load, so that no frame finishes loading unheard.
  frame.src = frame.dataset.src;
}
