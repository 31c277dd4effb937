// Benchmark set-up and browser timing for bench/workspace.sh, against a running `pbi-bridge up`:
//   node bench-workspace.mjs <pbi-bridge URL> <pins> <loads> <sandbox URL>
// Alice connects, creates a workspace and pins <pins> tiles (a tile is pinned once per workspace, so the
// sandbox's Sales Overview dashboard first gets copies of its four tiles, through the sandbox's control API,
// until Alice has that many); then the workspace page is loaded <loads> times and each load is timed until
// every tile frame reported `rendered`.
// Prints JSON: the session cookie, an API token and paths (for wrk) and the browser timings in milliseconds.
import { createHash } from "node:crypto";
import { click, connect, launch, settled, signIn } from "./story.mjs";

const [base, pins = "20", loads = "10", sandbox] = process.argv.slice(2);

/// The sandbox's demo-seed id for a seed name (pbi_sandbox::demo_id: SHA-256's first 16 bytes as a v4 UUID).
function demoId(name) {
  const b = createHash("sha256").update(name).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/// Copies of Sales Overview's four tiles, so that Alice has at least `wanted` tiles to pin.
async function enoughTiles(have, wanted) {
  const kinds = [
    { rowSpan: 1, colSpan: 1, visual: { kind: "card", table: "Sales", value: "Amount" } },
    { rowSpan: 2, colSpan: 2, visual: { kind: "bar", table: "Sales", value: "Amount", category: "Region" } },
    { rowSpan: 2, colSpan: 3, visual: { kind: "line", table: "Sales", value: "Amount", category: "Date" } },
    { rowSpan: 2, colSpan: 2, visual: { kind: "table", table: "Sales" } },
  ];
  for (let i = have; i < wanted; i++) {
    const command = { op: "createTile", dashboard: demoId("dash:sales-overview"), title: `Copy ${i}`, report: demoId("report:retail-sales"), ...kinds[i % 4] };
    const response = await fetch(`${sandbox}/_sandbox/commands`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(command) });
    if (!response.ok) throw new Error(`the sandbox refused ${JSON.stringify(command)}: ${response.status} ${await response.text()}`);
  }
}
const { browser, close } = await launch();
try {
  const page = await signIn(browser, base, "alice");
  const status = await connect(page, base, "alice");
  if (status !== "connected") throw new Error(`Alice is ${status}`);
  await page.goto(`${base}/workspaces`);
  await page.type("#name", "Benchmark");
  await click(page, "#create");
  const workspace = new URL(page.url()).pathname;
  await page.goto(`${base}${workspace}/pin`);
  const offered = await page.$$eval("#tile-list input[name=tile]", (boxes) => boxes.length);
  if (offered < Number(pins)) {
    if (!sandbox) throw new Error(`Alice has ${offered} tiles: pass the sandbox URL to make ${pins}`);
    await enoughTiles(offered, Number(pins));
    await page.goto(`${base}${workspace}/pin`);
  }
  const keys = await page.$$eval("#tile-list input[name=tile]", (boxes) => boxes.map((b) => b.value));
  const csrf = await page.$eval("input[name=csrf]", (e) => e.value);
  const form = new URLSearchParams({ csrf });
  for (const key of keys.slice(0, Number(pins))) form.append("tile", key);
  const pinned = await page.evaluate(
    async (path, body) => (await fetch(path, { method: "POST", body, headers: { "Content-Type": "application/x-www-form-urlencoded" } })).status,
    `${workspace}/pin`,
    form.toString(),
  );
  if (pinned !== 200) throw new Error(`pinning answered ${pinned}`);
  const timings = [];
  for (let i = 0; i < Number(loads); i++) {
    const started = performance.now();
    await page.goto(`${base}${workspace}`);
    await settled(page);
    timings.push(Math.round(performance.now() - started));
  }
  const states = await page.$$eval("iframe.tile-frame", (frames) => frames.map((f) => f.dataset.state));
  if (states.length !== Number(pins) || states.some((s) => s !== "rendered")) throw new Error(`tiles: ${states}`);
  const pin = await page.$eval("iframe.tile-frame", (f) => f.dataset.pin);
  const cookie = (await page.cookies()).find((c) => c.name === "pbi_session");
  // An API token for the JSON API runs, made as a person would, in My settings.
  await page.goto(`${base}/settings`);
  await page.type("#token-name", "benchmark");
  await click(page, "#make-token");
  const token = await page.$eval("#new-token-value", (e) => e.textContent.trim());
  console.log(JSON.stringify({ cookie: `pbi_session=${cookie.value}`, token, workspace, pin, tiles: keys.length, timings }));
} finally {
  await close();
}
