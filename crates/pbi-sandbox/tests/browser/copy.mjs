// The sandbox's callback page in a real headless Chromium, for crates/pbi-sandbox/tests/it/browser.rs:
//   node copy.mjs <callback page URL>
// Opens the page, clicks its Copy button, waits until the button says it copied (a condition on the page,
// never a length of time), and prints {"button", "clipboard", "violations"}: the button's text, what the
// clipboard then holds, and any Content-Security-Policy violation the page caused. Any failure ends the
// process with a non-zero status, which the test checks.
//
// puppeteer-core is borrowed from pbi-bridge's browser tests, as embed.mjs does.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(new URL("../../../pbi-bridge/tests/browser/package.json", import.meta.url));
const puppeteer = require("puppeteer-core");

const [url] = process.argv.slice(2);
const chromium = process.env.PBI_BRIDGE_CHROMIUM || execFileSync("which", ["chromium"]).toString().trim();
const profile = mkdtempSync(join(tmpdir(), "pbi-sandbox-chromium-"));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
try {
  await browser.defaultBrowserContext().overridePermissions(new URL(url).origin, ["clipboard-read", "clipboard-write", "clipboard-sanitized-write"]);
  const page = await browser.newPage();
  await page.evaluateOnNewDocument(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(url);
  // The script shows the button once it is ready; a generous limit so that a broken page fails, not hangs.
  await page.waitForSelector("#copy-redeem:not([hidden])", { timeout: 60_000 });
  await page.click("#copy-redeem");
  await page.waitForFunction(() => document.getElementById("copy-redeem").textContent !== "Copy", { timeout: 60_000 });
  const button = await page.$eval("#copy-redeem", (e) => e.textContent);
  const clipboard = await page.evaluate(() => navigator.clipboard.readText());
  const violations = await page.evaluate(() => window.__violations);
  console.log(JSON.stringify({ button, clipboard, violations }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
