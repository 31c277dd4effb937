// The steps of seed 000's story that the walkthrough test and the benchmark share, on Debian's Chromium.
// Every wait is for something on the page (a selector or a condition), never for a length of time.
import puppeteer from "puppeteer-core";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/// Headless Chromium on a fresh profile; `close()` also deletes the profile.
export async function launch() {
  const chromium = process.env.PBI_BRIDGE_CHROMIUM || execFileSync("which", ["chromium"]).toString().trim();
  const profile = mkdtempSync(join(tmpdir(), "pbi-bridge-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    userDataDir: profile,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    defaultViewport: { width: 1280, height: 900 },
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/// Signs a demo user in to pbi-bridge in a browser context of their own (their own cookies).
/// `prepare(page)` runs before the first page loads (to listen from the very first page on).
export async function signIn(browser, base, name, prepare = async () => {}) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await prepare(page);
  await page.goto(`${base}/login`);
  await page.type("#username", name);
  await page.type("#password", `${name}-demo-password`);
  await click(page, "#sign-in");
  return page;
}

export async function click(page, selector) {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

/// My settings → Get started → the sandbox's Entra ID sign-in → consent → back; returns the status shown.
/// `shot(name)` is called at each step with a file name for a screenshot.
export async function connect(page, base, name, shot = async () => {}) {
  await startConnecting(page, base, name, () => shot(`2-${name}-entra-sign-in.png`));
  await page.waitForSelector("#accept");
  await shot(`3-${name}-consent.png`);
  await click(page, "#accept");
  return page.$eval("#status", (e) => e.textContent.trim());
}

/// Waits until every tile frame on a workspace page reported `rendered` or `error` (the powerbi-client events).
export async function settled(page) {
  await page.waitForFunction(
    () => {
      const frames = [...document.querySelectorAll("iframe.tile-frame")];
      return frames.length > 0 && frames.every((f) => f.dataset.state === "rendered" || f.dataset.state === "error");
    },
    { timeout: 60000 },
  );
}

/// My settings → Get started → the sandbox's Entra ID sign-in as `account`@contoso; stops at the consent page.
/// `beforeSignIn()` runs with the sign-in form filled in.
export async function startConnecting(page, base, account, beforeSignIn = async () => {}) {
  await page.goto(`${base}/settings`);
  await click(page, "#get-started");
  await page.waitForSelector("#passwd");
  await page.$eval("#login", (e) => (e.value = ""));
  await page.type("#login", `${account}@contoso.onmicrosoft.com`);
  await page.type("#passwd", `${account}-password`);
  await beforeSignIn();
  await click(page, "#idSIButton9");
}

/// After a failure: where each person's page was and what it said (the test prints it), and a screenshot.
export async function sayWhereEachWas(sessions, shots) {
  for (const [name, page] of Object.entries(sessions)) {
    const text = await page.$eval("body", (b) => b.innerText).catch(() => "(no page)");
    console.error(`${name} was at ${page.url()}:\n${text.slice(0, 2000)}\n`);
    await page.screenshot({ path: join(shots, `failed-${name}.png`), fullPage: true }).catch(() => {});
  }
}
