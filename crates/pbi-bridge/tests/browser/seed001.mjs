// Seed 001's story in a real headless Chromium, against a running `pbi-bridge up`:
//   node seed001.mjs <pbi-bridge URL> <screenshot directory> <demo database file>
// The admin registers a data source and an item, makes the templates again and builds each template visual
// in the sandbox's Power BI pages; Alice pins the item to a new dashboard and sees it drawn there; the test
// changes the data and the clock moves an hour: the tile shows the new figures; her consent is withdrawn, two
// hours later her next delivery pauses the subscription, she signs in again, and the next delivery succeeds.
// Prints one JSON object per line: `{"waiting": …}` when it needs the test to act (the test answers on stdin),
// and last the report, which crates/pbi-bridge/tests/it/browser.rs asserts on.
// Every wait is for something on a page or in an answer, never for a length of time.
import { createInterface } from "node:readline";
import { join } from "node:path";
import { click, connect, launch, sayWhereEachWas, signIn as signInAs } from "./story.mjs";
import { checkPage } from "./pages.mjs";

const [base, shots, database] = process.argv.slice(2);
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const { browser, close } = await launch();
const report = { pages: [], messages: {} };
const sessions = {};
const ITEM = "Spend by department (walkthrough)";
const BOARD = "IT Spend Analysis Sample";
try {
  report.admin = await admin();
  report.pin = await pin();
  report.refreshed = await newDataAnHourLater();
  report.expired = await consentWithdrawn();
  report.again = await signInAgain();
} catch (error) {
  await sayWhereEachWas(sessions, shots);
  throw error;
} finally {
  await close();
  // Stop reading the test's answers, or node would wait for its standard input to end.
  input.close();
  process.stdin.destroy();
}
console.log(JSON.stringify(report));

/// Asks the test to do something outside the browser and waits for its answer.
async function theTest(waiting) {
  console.log(JSON.stringify({ waiting }));
  const answer = await lines.next();
  if (answer.done || answer.value.trim() !== "done") throw new Error(`the test did not do ${waiting}: ${answer.value}`);
}

async function message(page) {
  return page.$eval("#message", (e) => e.textContent.trim()).catch(() => null);
}

/// The sandbox's control API, as a script (no Origin header) calls it.
async function control(sandbox, path, body) {
  const answer = await fetch(`${sandbox}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!answer.ok) throw new Error(`${path}: ${answer.status} ${await answer.text()}`);
  return answer.json();
}

async function admin() {
  const page = await signInAs(browser, base, "admin");
  sessions.admin = page;
  // Signing in to Power BI also signs the admin in to the sandbox's Entra ID, which its Power BI pages use.
  const status = await connect(page, base, "admin");

  await page.goto(`${base}/admin/data-sources`);
  await page.type("#source-name", "Finance (walkthrough)");
  await page.select("#source-kind", "sqlite");
  await page.type("#source-location", database);
  await click(page, "#add-source-button");
  report.messages.source = await message(page);
  await checkPage(page, report.pages, shots, "s1-admin-data-sources");

  await page.goto(`${base}/admin/items/new`);
  await page.type("#item-name", ITEM);
  await page.type("#item-description", "Spend per department, all months");
  await page.select("#item-kind", "category-series");
  await page.type("#item-columns", "Department: text\nAmount: decimal");
  await page.type("#item-value", "Amount");
  await page.type("#item-category", "Department");
  await page.select("#item-source", "query");
  const source = await page.$$eval("#item-data-source option", (options) => options.find((o) => o.textContent.includes("Finance (walkthrough)"))?.value);
  await page.select("#item-data-source", source);
  await page.type(
    "#item-query",
    "SELECT department AS Department, SUM(amount) AS Amount FROM spend WHERE company = :company GROUP BY department ORDER BY department",
  );
  await page.type("#item-parameters", "company = USMF");
  await page.$eval("#item-everyone", (e) => (e.checked = true));
  await checkPage(page, report.pages, shots, "s2-admin-new-item");
  await click(page, "#save-item");
  report.messages.item = await message(page);

  // The templates, made again in a new workspace; each visual built and pinned in Power BI, then checked.
  await page.goto(`${base}/admin/templates`);
  await page.$eval("#workspace-name", (e) => (e.value = ""));
  await page.type("#workspace-name", "Walkthrough templates");
  await click(page, "#make");
  report.messages.made = await message(page);
  const notPinned = await page.$$eval("#templates .badge", (badges) => badges.map((b) => b.textContent.trim()));
  await checkPage(page, report.pages, shots, "s3-admin-templates-made");
  const links = await page.$$eval("#templates tr.template", (rows) =>
    rows.map((r) => ({ kind: r.id.replace("template-", ""), href: r.querySelector("a.dataset-link")?.href })),
  );
  const visuals = {
    "single-value": { visual: "card", value: "Value", category: "" },
    "category-series": { visual: "bar", value: "Value", category: "Category" },
    "time-series": { visual: "line", value: "Value", category: "Date" },
    table: { visual: "table", value: "", category: "" },
  };
  const pinnedInPowerBi = [];
  for (const { kind, href } of links) {
    if (!href) throw new Error(`no Power BI link for ${kind}`);
    await page.goto(href);
    await click(page, "#create-report");
    const { visual, value, category } = visuals[kind];
    await page.select("#visual", visual);
    await page.select("#table", "Item");
    await page.select("#value", value);
    await page.select("#category", category);
    const board = await page.$$eval("#dashboard option", (options) => options.find((o) => o.textContent.endsWith("(Walkthrough templates)"))?.value);
    await page.select("#dashboard", board);
    await click(page, "#pin-visual");
    pinnedInPowerBi.push(await page.$eval("#pinned", (e) => e.textContent.trim()));
    if (kind === "category-series") await page.screenshot({ path: join(shots, "s4-sandbox-pin-visual.png"), fullPage: true });
  }
  // In Power BI, the admin gives the people who pin Contributor access to the new templates workspace (the
  // sandbox has no page for workspace access: its control API does it).
  const sandbox = new URL(links[0].href).origin;
  const workspace = new URL(links[0].href).pathname.split("/")[2];
  const seed = await (await fetch(`${sandbox}/_sandbox/seed`)).json();
  const alice = seed.users.find((u) => u.upn === "alice@contoso.onmicrosoft.com");
  await control(sandbox, "/_sandbox/commands", { op: "addWorkspaceMember", workspace, principal: alice.id, role: "Contributor" });
  await page.goto(`${base}/admin/templates`);
  await click(page, "#check");
  report.messages.checked = await message(page);
  const ready = await page.$$eval("#templates .badge", (badges) => badges.map((b) => b.textContent.trim()));
  await checkPage(page, report.pages, shots, "s5-admin-templates-ready");
  return { status, notPinned, pinnedInPowerBi, ready, sandbox, alice: alice.id };
}

async function pin() {
  const page = await signInAs(browser, base, "alice");
  sessions.alice = page;
  const status = await connect(page, base, "alice");
  await page.goto(`${base}/items`);
  await checkPage(page, report.pages, shots, "s6-alice-items");
  const link = await page.$$eval("#items tr.item", (rows, name) => rows.find((r) => r.querySelector("th").textContent === name)?.querySelector("a").id, ITEM);
  await click(page, `#${link}`);
  await page.select("#target", "me:new");
  await page.type("#new-dashboard-name", BOARD);
  await page.select("#every", "hourly");
  await page.type("#minute", "0");
  await page.$eval("#time-zone", (e) => (e.value = "UTC"));
  await page.$eval("#param-company", (e) => (e.value = "USMF"));
  await checkPage(page, report.pages, shots, "s7-alice-pin-dialog");
  await click(page, "#pin");
  report.messages.pinned = await message(page);
  const subscription = page.url();
  const deliveries = await history(page);
  await checkPage(page, report.pages, shots, "s8-alice-subscription");
  const dashboard = await page.$eval("#open-dashboard", (a) => a.href);
  const drawn = await drawnOnDashboard(page, dashboard);
  await page.screenshot({ path: join(shots, "s9-sandbox-dashboard.png"), fullPage: true });
  return { status, subscription, deliveries, dashboard, drawn };
}

/// The delivery history on a subscription's page: outcome and rows of each, newest first.
async function history(page) {
  return page.$$eval("#history tr.delivery", (rows) => rows.map((r) => ({ outcome: r.querySelector(".badge").textContent.trim(), rows: r.cells[2].textContent.trim() })));
}

/// What the dashboard's page in Power BI draws: each tile's title and points.
async function drawnOnDashboard(page, url) {
  await page.goto(url);
  return page.$$eval("#tiles .tile", (tiles) =>
    tiles.map((t) => ({ title: t.dataset.title, points: Object.fromEntries([...t.querySelectorAll("li")].map((li) => [li.dataset.label, Number(li.dataset.value)])) })),
  );
}

/// Waits until `url`, fetched in `page`'s session, says `wanted` (a delivery that runs in the background).
async function untilSays(page, url, wanted) {
  await page.waitForFunction(
    async (url, wanted) => (await (await fetch(url)).text()).includes(wanted),
    { polling: 250, timeout: 60000 },
    url,
    wanted,
  );
}

/// The subscription's next run as its page says it (the `datetime` of its time element).
async function nextRun(page) {
  await page.goto(report.pin.subscription);
  return page.evaluate(async (url) => (await (await fetch(url)).text()).match(/Next run<\/dt><dd><time datetime="([^"]+)"/)?.[1], report.pin.subscription);
}

/// Moves the clock two hours on once the schedule has moved to its next run after `before` (a delivery hands
/// over to the next occurrence just after it ends: the clock moved first would race it).
async function twoHoursOnAfterTheNextRunMovesFrom(page, before) {
  await page.goto(report.pin.subscription);
  await page.waitForFunction(
    async (url, before) => (await (await fetch(url)).text()).match(/Next run<\/dt><dd><time datetime="([^"]+)"/)?.[1] !== before,
    { polling: 250, timeout: 60000 },
    report.pin.subscription,
    before,
  );
  await control(report.admin.sandbox, "/_sandbox/clock/advance", { seconds: 7200 });
}

async function newDataAnHourLater() {
  const page = sessions.alice;
  await theTest("new-data");
  report.nextRunBefore = await nextRun(page);
  await control(report.admin.sandbox, "/_sandbox/clock/advance", { seconds: 3600 });
  // The hourly delivery runs by itself: the dashboard shows the new figure once it has.
  const it = () => report.pin.drawn[0]?.points?.IT;
  await page.goto(report.pin.dashboard);
  await page.waitForFunction(
    async (before) => {
      const html = await (await fetch(location.href)).text();
      const found = html.match(/data-label="IT" data-value="([0-9.]+)"/);
      return found && Number(found[1]) !== before;
    },
    { polling: 250, timeout: 60000 },
    it(),
  );
  const drawn = await drawnOnDashboard(page, report.pin.dashboard);
  await page.goto(report.pin.subscription);
  const deliveries = await history(page);
  return { drawn, deliveries };
}

async function consentWithdrawn() {
  const page = sessions.alice;
  // Alice withdraws her consent in Entra ID; two hours on (after the hourly delivery has handed over to the
  // next occurrence), her access token has expired and cannot be renewed: the next delivery, which she starts
  // with Run now, pauses the subscription.
  await control(report.admin.sandbox, "/_sandbox/commands", { op: "revokeGrants", user: report.admin.alice });
  await twoHoursOnAfterTheNextRunMovesFrom(page, report.nextRunBefore);
  await page.goto(report.pin.subscription);
  await click(page, "#run-now");
  await untilSays(page, `${base}/subscriptions`, 'id="paused-banner"');
  await page.goto(`${base}/subscriptions`);
  const banner = await page.$eval("#paused-banner", (e) => e.textContent.trim());
  const state = await page.$eval("#subscriptions .badge", (e) => e.textContent.trim());
  const reason = await page.$eval("#subscriptions td p.wrap", (e) => e.textContent.trim()).catch(() => null);
  await checkPage(page, report.pages, shots, "s10-alice-subscriptions-paused");
  return { banner, state, reason };
}

async function signInAgain() {
  const page = sessions.alice;
  // A minute on, so that the delivery after the sign-in starts after the paused one (the history's order).
  await control(report.admin.sandbox, "/_sandbox/clock/advance", { seconds: 60 });
  // My settings says the connection needs a sign-in: Sign in again, at the sandbox's Entra ID.
  await page.goto(`${base}/settings`);
  report.messages.needsSignIn = await page.$eval(".message-bar", (e) => e.textContent.trim()).catch(() => null);
  await click(page, "#sign-in-again");
  if (await page.$("#passwd")) {
    await page.$eval("#login", (e) => (e.value = ""));
    await page.type("#login", "alice@contoso.onmicrosoft.com");
    await page.type("#passwd", "alice-password");
    await click(page, "#idSIButton9");
  }
  await page.waitForSelector("#accept");
  await click(page, "#accept");
  report.messages.signedInAgain = await message(page);
  // Signing in again resumes the subscription, which delivers at once.
  await untilSays(page, report.pin.subscription, 'id="state">active');
  await page.goto(report.pin.subscription);
  // The newest delivery (the first row) is the one after the sign-in: wait until it has delivered.
  await page.waitForFunction(
    async () => (await (await fetch(location.href)).text()).match(/<tr class="delivery">[\s\S]*?<\/tr>/)?.[0].includes(">delivered<"),
    { polling: 250, timeout: 60000 },
  );
  await page.goto(report.pin.subscription);
  const state = await page.$eval("#state", (e) => e.textContent.trim());
  const deliveries = await history(page);
  const drawn = await drawnOnDashboard(page, report.pin.dashboard);
  return { state, deliveries, drawn };
}
