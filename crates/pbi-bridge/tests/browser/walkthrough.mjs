// Seed 000's story in a real headless Chromium, against a running `pbi-bridge up`:
//   node walkthrough.mjs <pbi-bridge URL> <screenshot directory>
// Prints one JSON object describing what each person saw; crates/pbi-bridge/tests/it/browser.rs asserts on it.
// Every wait is for something on the page (a selector or a condition), never for a length of time.
import puppeteer from "puppeteer-core";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, shots] = process.argv.slice(2);
const chromium = process.env.PBI_BRIDGE_CHROMIUM || execFileSync("which", ["chromium"]).toString().trim();
const profile = mkdtempSync(join(tmpdir(), "pbi-bridge-walkthrough-"));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  defaultViewport: { width: 1280, height: 900 },
});
const report = {};
const sessions = {};
try {
  report.admin = await admin();
  report.alice = await user("alice", ["Total Sales", "Sales by Region"]);
  report.aliceFiltered = await filterToCompany("alice", report.alice.workspaceUrl, "USMF");
  report.bob = await user("bob", ["Actual Spend"]);
  report.bobOnAlicesWorkspace = await visit("bob", report.alice.workspaceUrl);
} catch (error) {
  // Say where each person was and what their page said: the test prints this when it fails.
  for (const [name, page] of Object.entries(sessions)) {
    const text = await page.$eval("body", (b) => b.innerText).catch(() => "(no page)");
    console.error(`${name} was at ${page.url()}:\n${text.slice(0, 2000)}\n`);
    await page.screenshot({ path: join(shots, `failed-${name}.png`), fullPage: true }).catch(() => {});
  }
  throw error;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));

// Each person in their own browser context: their own cookies, as two people on two machines.
async function signIn(name) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.type("#username", name);
  await page.type("#password", `${name}-demo-password`);
  await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
  sessions[name] = page;
  return page;
}

async function click(page, selector) {
  await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

async function admin() {
  const page = await signIn("admin");
  await page.goto(`${base}/admin/powerbi`);
  const redirectUrl = await page.$eval("#redirect-url", (e) => e.textContent);
  await click(page, "#validate");
  const checks = await page.$$eval("#checks tr", (rows) => rows.slice(1).map((r) => [...r.cells].map((c) => c.textContent.trim())));
  await page.screenshot({ path: join(shots, "1-admin-validate.png"), fullPage: true });
  return { redirectUrl, checks };
}

async function user(name, pick) {
  const page = await signIn(name);
  await page.goto(`${base}/settings`);
  await click(page, "#get-started");
  // The sandbox's Entra ID sign-in and consent pages.
  await page.waitForSelector("#passwd");
  await page.$eval("#login", (e) => (e.value = ""));
  await page.type("#login", `${name}@contoso.onmicrosoft.com`);
  await page.type("#passwd", `${name}-password`);
  await page.screenshot({ path: join(shots, `2-${name}-entra-sign-in.png`) });
  await click(page, "#idSIButton9");
  await page.waitForSelector("#accept");
  await page.screenshot({ path: join(shots, `3-${name}-consent.png`) });
  await click(page, "#accept");
  const status = await page.$eval("#status", (e) => e.textContent.trim());
  await page.screenshot({ path: join(shots, `4-${name}-settings.png`), fullPage: true });

  await page.goto(`${base}/workspaces`);
  await page.type("#name", `${name}'s dashboard`);
  await click(page, "#create");
  const workspaceUrl = page.url();
  await click(page, "#pin-tiles");
  const offered = await page.$$eval("#tile-list label", (labels) => labels.map((l) => l.textContent));
  await page.screenshot({ path: join(shots, `5-${name}-tile-list.png`), fullPage: true });
  for (const title of pick) {
    const box = await page.$$eval(
      "#tile-list label",
      (labels, wanted) => labels.find((l) => l.textContent === wanted)?.htmlFor,
      title,
    );
    if (!box) throw new Error(`${name} is not offered ${title}: ${offered.join(", ")}`);
    await page.click(`#${box}`);
  }
  await click(page, "#pin");
  // The embed frames report back through the powerbi-client messages; wait until every tile settled.
  await settled(page);
  const tiles = await page.$$eval("iframe.tile-frame", (frames) =>
    frames.map((f) => ({ title: f.closest(".tile").dataset.title, state: f.dataset.state, width: f.clientWidth, height: f.clientHeight })),
  );
  const drawn = await drawnTiles(page);
  await page.screenshot({ path: join(shots, `6-${name}-workspace.png`), fullPage: true });
  const workspaces = await (async () => {
    await page.goto(`${base}/workspaces`);
    return page.$$eval("#workspaces a", (links) => links.map((a) => a.textContent));
  })();
  return { status, offered, workspaceUrl, tiles, drawn, workspaces };
}

async function settled(page) {
  await page.waitForFunction(
    () => {
      const frames = [...document.querySelectorAll("iframe.tile-frame")];
      return frames.length > 0 && frames.every((f) => f.dataset.state === "rendered" || f.dataset.state === "error");
    },
    { timeout: 60000 },
  );
}

// What each tile frame drew: the sandbox's embed page marks its root and visuals.
async function drawnTiles(page) {
  const drawn = [];
  for (const frame of page.frames().filter((f) => f !== page.mainFrame())) {
    drawn.push(await frame.$eval("#root", (root) => ({
      state: root.dataset.state,
      title: root.querySelector(".visual h2")?.textContent,
      kind: root.querySelector(".visual")?.dataset.kind,
      errors: root.querySelectorAll(".error").length,
      card: root.querySelector(".card")?.dataset.value,
    })));
  }
  return drawn;
}

// Seed 000's company filter: the workspace shows only one company's figures.
async function filterToCompany(name, url, company) {
  const page = sessions[name];
  await page.goto(url);
  await settled(page);
  const before = await drawnTiles(page);
  await page.type("#company", company);
  await click(page, "#set-filter");
  await settled(page);
  const after = await drawnTiles(page);
  await page.screenshot({ path: join(shots, `7-${name}-filtered-${company}.png`), fullPage: true });
  return { before, after };
}

async function visit(name, url) {
  const response = await sessions[name].goto(url);
  return { status: response.status(), text: await sessions[name].$eval("body", (b) => b.textContent) };
}
