// The sandbox's embed page in a real headless Chromium, for crates/pbi-sandbox/tests/it/browser.rs:
//   node embed.mjs <host page URL> <screenshot path>
// Opens the host page, waits until it has seen `/tile/load` accepted and the `tileLoaded` and `rendered`
// events (a condition on the page, never a length of time), saves the screenshot, and prints
// {"status": "<what the host page saw>"}. Any failure (Chromium not starting, the condition never coming)
// ends the process with a non-zero status, which the test checks.
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

const [url, shot] = process.argv.slice(2);
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
  console.log(JSON.stringify({ status: await status(page) }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
