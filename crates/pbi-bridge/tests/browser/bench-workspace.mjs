// Benchmark set-up and browser timing for bench/workspace.sh, against a running `pbi-bridge up`:
//   node bench-workspace.mjs <pbi-bridge URL> <pins> <loads>
// Alice connects, creates a workspace and pins <pins> tiles (the demo's tiles, repeated); then the workspace
// page is loaded <loads> times and each load is timed until every tile frame reported `rendered`.
// Prints JSON: the session cookie, an API token and paths (for wrk) and the browser timings in milliseconds.
import { click, connect, launch, settled, signIn } from "./story.mjs";

const [base, pins = "20", loads = "10"] = process.argv.slice(2);
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
  const keys = await page.$$eval("#tile-list input[name=tile]", (boxes) => boxes.map((b) => b.value));
  const csrf = await page.$eval("input[name=csrf]", (e) => e.value);
  const form = new URLSearchParams({ csrf });
  for (let i = 0; i < Number(pins); i++) form.append("tile", keys[i % keys.length]);
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
