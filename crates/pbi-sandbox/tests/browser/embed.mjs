// The sandbox's embed page in a real headless Chromium, for crates/pbi-sandbox/tests/it/browser.rs:
//   node embed.mjs <host page URL> <screenshot path> [<push: JSON {url, token, body}>]
// Opens the host page, waits until it has seen `/tile/load` accepted and the `tileLoaded` and `rendered`
// events (a condition on the page, never a length of time), saves the screenshot, and prints
// {"status": "<what the host page saw>", "before": "<the tile's text>"}. With a push, it then POSTs those rows
// (as a delivery would), waits until the tile has redrawn by itself, and adds "after": "<the tile's text>".
// Any failure (Chromium not starting, a condition never coming) ends the process with a non-zero status,
// which the test checks.
//
// puppeteer-core is borrowed from pbi-bridge's browser tests (`./scripts/test` runs `npm ci` there), so the
// sandbox needs no node_modules of its own; it drives Debian's Chromium and downloads no browser.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(new URL("../../../pbi-bridge/tests/browser/package.json", import.meta.url));
const puppeteer = require("puppeteer-core");

const [url, shot, push] = process.argv.slice(2);
const chromium = process.env.PBI_BRIDGE_CHROMIUM || execFileSync("which", ["chromium"]).toString().trim();
const profile = mkdtempSync(join(tmpdir(), "pbi-sandbox-chromium-"));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--hide-scrollbars"],
  defaultViewport: { width: 660, height: 420 },
});
const status = (page) => page.$eval("#status", (e) => e.textContent).catch(() => "(no status)");
try {
  const page = await browser.newPage();
  await page.goto(url);
  try {
    // A generous limit, so that a broken embed page fails the test instead of hanging it.
    await page.waitForFunction(
      () => {
        const seen = document.getElementById("status").textContent;
        return seen.includes("load:202") && seen.includes("/events/tileLoaded") && seen.includes("/events/rendered");
      },
      { timeout: 60_000 },
    );
  } catch (error) {
    console.error(`the host page saw: ${await status(page)}`);
    throw error;
  }
  await page.screenshot({ path: shot });
  const tile = () => page.frames().find((f) => f.url().includes("/embed?"));
  const text = () => tile().$eval("#root", (e) => e.textContent);
  const seen = { status: await status(page), before: await text() };
  if (push) {
    const { url: rowsUrl, token, body } = JSON.parse(push);
    const pushed = await fetch(rowsUrl, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    if (!pushed.ok) throw new Error(`pushing rows answered ${pushed.status}: ${await pushed.text()}`);
    await tile().waitForFunction(() => Number(document.getElementById("root").dataset.version || "0") >= 1, { timeout: 60_000 });
    seen.after = await text();
  }
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
