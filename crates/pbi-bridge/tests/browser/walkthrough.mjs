// Seed 000's story in a real headless Chromium, against a running `pbi-bridge up`:
//   node walkthrough.mjs <pbi-bridge URL> <screenshot directory>
// Prints one JSON object describing what each person saw; crates/pbi-bridge/tests/it/browser.rs asserts on it.
// Every wait is for something on the page (a selector or a condition), never for a length of time.
import { join } from "node:path";
import { click, connect, launch, sayWhereEachWas, settled, signIn as signInAs, startConnecting } from "./story.mjs";
import { checkPage } from "./pages.mjs";

const [base, shots] = process.argv.slice(2);
const { browser, close } = await launch();
const report = {};
const sessions = {};
// Every Content-Security-Policy violation any page reports, as the event and as the console says it.
report.cspViolations = [];
// Every pbi-bridge page visited: its frame, axe-core's WCAG 2.1 A/AA violations, its width on a phone.
report.pages = [];
// The message bar each action left on the page after it.
report.messages = {};
try {
  report.admin = await admin();
  report.alice = await user("alice", ["Total Sales", "Sales by Region"]);
  report.aliceFiltered = await filterToCompany("alice", report.alice.workspaceUrl, "USMF");
  report.aliceTokenPosts = await tokenPosts("alice", report.alice.workspaceUrl);
  report.bob = await user("bob", ["Actual Spend"]);
  report.bobOnAlicesWorkspace = await visit("bob", report.alice.workspaceUrl);
  report.aliceApi = await apiToken("alice");
  report.aliceBoard = await dashboard("alice");
  report.troubleshooting = await troubleshooting("dana", "carol");
  report.keyboard = await keyboardOnly("erin", "admin");
  report.frames = await frames();
} catch (error) {
  // Say where each person was and what their page said: the test prints this when it fails.
  await sayWhereEachWas(sessions, shots);
  throw error;
} finally {
  await close();
}
console.log(JSON.stringify(report));

// Each person in their own browser context: their own cookies, as two people on two machines.
async function signIn(name) {
  sessions[name] = await signInAs(browser, base, name, (page) => watchPolicy(page, name));
  // Browser time cannot be moved on, so long timers (the tokens' renewals) are held for the test to fire.
  await sessions[name].evaluateOnNewDocument(() => {
    const later = [];
    const setTimeoutNow = window.setTimeout;
    window.setTimeout = (run, ms, ...args) => (ms >= 60000 ? later.push({ run, ms }) : setTimeoutNow(run, ms, ...args));
    window.fireHeldTimers = () => later.splice(0).map(({ run, ms }) => (run(), ms));
    window.heldTimers = () => later.map(({ ms }) => ms);
  });
  return sessions[name];
}

/// Records what the Content-Security-Policy refused on `page`, from the first page it loads on.
async function watchPolicy(page, name) {
  await page.exposeFunction("reportPolicyViolation", (violation) => report.cspViolations.push({ person: name, ...violation }));
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      window.reportPolicyViolation({ page: location.href, directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample }),
    );
  });
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy/i.test(message.text())) {
      report.cspViolations.push({ person: name, page: page.url(), console: message.text() });
    }
  });
}

async function admin() {
  const page = await signIn("admin");
  await page.browserContext().overridePermissions(base, ["clipboard-read", "clipboard-write", "clipboard-sanitized-write"]);
  await page.goto(`${base}/admin/powerbi`);
  await checkPage(page, report.pages, shots, "p-admin-powerbi");
  const redirectUrl = await page.$eval("#redirect-url", (e) => e.textContent);
  // The Copy button next to it puts it on the clipboard, as the admin pastes it into the Azure portal.
  await page.bringToFront();
  await page.click('button[data-copy="redirect-url"]');
  await page.waitForFunction(() => document.querySelector('button[data-copy="redirect-url"]').textContent !== "Copy");
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const copyButtonSays = await page.$eval('button[data-copy="redirect-url"]', (e) => e.textContent);
  await click(page, "#validate");
  const checks = await page.$$eval("#checks tr", (rows) => rows.slice(1).map((r) => [...r.cells].map((c) => c.textContent.trim())));
  const validated = await page.$eval("#message", (e) => e.textContent.trim());
  await page.screenshot({ path: join(shots, "1-admin-validate.png"), fullPage: true });
  report.messages.validate = validated;
  await checkPage(page, report.pages, shots, "p-admin-validated");
  // The admin adds a colleague on the Users page, who then signs in with what the admin set.
  await page.goto(`${base}/admin/users`);
  await page.type("#new-username", "dana");
  await page.type("#new-display-name", "Dana Lee");
  await page.type("#new-password", "dana-demo-password");
  await click(page, "#add-user");
  const added = await page.$eval("#message", (e) => e.textContent.trim());
  await page.screenshot({ path: join(shots, "1-admin-users.png"), fullPage: true });
  report.messages.addUser = added;
  await checkPage(page, report.pages, shots, "p-admin-users");
  // Erin, who does the whole story with the keyboard only (keyboardOnly below).
  await page.type("#new-username", "erin");
  await page.type("#new-display-name", "Erin Park");
  await page.type("#new-password", "erin-demo-password");
  await click(page, "#add-user");
  await page.goto(`${base}/admin/audit`);
  await checkPage(page, report.pages, shots, "p-admin-audit");
  await page.goto(`${base}/admin/jobs`);
  await checkPage(page, report.pages, shots, "p-admin-jobs");
  // The admin makes an app (seed 002) and is shown its secret key once.
  await page.goto(`${base}/admin/apps`);
  await checkPage(page, report.pages, shots, "p-admin-apps");
  await page.type("#app-name", "Contoso ERP");
  await page.type("#app-origins", "https://erp.contoso.com");
  await click(page, "#add-app-button");
  const appKey = await page.$eval("#new-key-value", (e) => e.textContent.trim());
  await checkPage(page, report.pages, shots, "p-admin-app");
  const endUser = await connectPage(appKey);
  const dana = await signIn("dana");
  const danaSeesHerName = await dana.$eval("#user", (e) => e.textContent.trim());
  return { redirectUrl, copied, copyButtonSays, checks, validated, added, appKey, danaSeesHerName, endUser };
}

// Seed 002: the app's backend makes a connect session with its secret key; its end user, in a browser of their
// own, opens the hosted connect page, goes to Microsoft's sign-in as bob and declines the permissions, and
// lands on the page that says so.
async function connectPage(appKey) {
  const made = await fetch(`${base}/api/v1/connect/sessions`, {
    method: "POST",
    headers: { authorization: `Bearer ${appKey}`, "content-type": "application/json" },
    body: JSON.stringify({ endUser: { id: "erp-user-7", displayName: "Bob at Contoso ERP" } }),
  }).then((r) => r.json());
  const page = await (await browser.createBrowserContext()).newPage();
  sessions.endUser = page;
  await page.goto(made.url);
  const heading = await page.$eval("h1", (e) => e.textContent.trim());
  await checkPage(page, report.pages, shots, "p-anonymous-connect-app");
  await click(page, "#continue");
  await page.waitForSelector("#passwd");
  await page.$eval("#login", (e) => (e.value = ""));
  await page.type("#login", "bob@contoso.onmicrosoft.com");
  await page.type("#passwd", "bob-password");
  await click(page, "#idSIButton9");
  await page.waitForSelector("#cancel");
  await click(page, "#cancel");
  await page.waitForSelector("#connect-result");
  const status = await page.$eval("#connect-result", (e) => e.dataset.status);
  await checkPage(page, report.pages, shots, "p-anonymous-connect-declined");
  return { heading, status, urlHasNoToken: !page.url().includes("pcs_") };
}

async function user(name, pick) {
  const page = await signIn(name);
  const status = await connect(page, base, name, (file) => page.screenshot({ path: join(shots, file) }));
  await page.screenshot({ path: join(shots, `4-${name}-settings.png`), fullPage: true });
  report.messages[`${name}Connected`] = await page.$eval("#message", (e) => e.textContent.trim()).catch(() => null);
  await checkPage(page, report.pages, shots, `p-${name}-settings-connected`);

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
  // Each tile holds one renewal timer; firing them fetches a fresh token per tile and hands it to the frame.
  const renewalDelays = await page.evaluate(() => window.fireHeldTimers());
  await page.waitForFunction(() => [...document.querySelectorAll("iframe.tile-frame")].every((f) => f.dataset.renewals === "1" || f.dataset.renewError));
  const renewals = await page.$$eval("iframe.tile-frame", (frames) => frames.map((f) => f.dataset.renewals || f.dataset.renewError));
  const rescheduled = await page.evaluate(() => window.heldTimers());
  const workspaces = await (async () => {
    await page.goto(`${base}/workspaces`);
    return page.$$eval("#workspaces a", (links) => links.map((a) => a.textContent));
  })();
  return { status, offered, workspaceUrl, tiles, drawn, workspaces, renewalDelays, renewals, rescheduled };
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
      cardText: root.querySelector(".card")?.textContent,
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
  // The filter offers the companies found in the tiles (asked of Power BI after the page is drawn).
  await page.waitForSelector("#tiles[data-companies]");
  const offered = await page.$$eval("#company-list option", (options) => options.map((o) => o.value));
  await page.type("#company", company);
  await click(page, "#set-filter");
  await settled(page);
  const after = await drawnTiles(page);
  const badge = await page.$eval("#filter-badge", (e) => e.textContent.trim()).catch(() => null);
  await page.waitForSelector("#tiles[data-companies]");
  const noteWhenFound = await page.$eval("#company-note", (e) => (e.hidden ? null : e.textContent.trim()));
  await page.screenshot({ path: join(shots, `7-${name}-filtered-${company}.png`), fullPage: true });
  // A company none of the tiles holds: the page says so, and the card shows (Blank), as Power BI draws it.
  await page.$eval("#company", (e) => (e.value = ""));
  await page.type("#company", "NOPE");
  await click(page, "#set-filter");
  await page.waitForSelector("#company-note:not([hidden])");
  const noteWhenMissing = await page.$eval("#company-note", (e) => e.textContent.trim());
  await settled(page);
  const missing = await drawnTiles(page);
  await checkPage(page, report.pages, shots, `p-${name}-workspace-no-company`);
  await click(page, "#clear-filter");
  const cleared = await page.$eval("#company", (e) => e.value);
  return { before, after, offered, badge, noteWhenFound, noteWhenMissing, missing, cleared };
}

// The tile script posts the user's Power BI token to each frame's embed origin only. On a page of its own,
// each tile frame is made to hold about:blank (the workspace page's own origin, not the embed URL's) and every
// message posted into it is recorded with its target origin instead of sent: a message aimed at "*" (or at any
// origin but the embed URL's) would reach whatever the frame holds.
async function tokenPosts(name, url) {
  const page = await sessions[name].browserContext().newPage();
  await page.evaluateOnNewDocument(() => {
    window.tokenPosts = [];
    const src = Object.getOwnPropertyDescriptor(HTMLIFrameElement.prototype, "src");
    Object.defineProperty(HTMLIFrameElement.prototype, "src", { get: src.get, set() { src.set.call(this, "about:blank"); } });
    const contentWindow = Object.getOwnPropertyDescriptor(HTMLIFrameElement.prototype, "contentWindow").get;
    Object.defineProperty(HTMLIFrameElement.prototype, "contentWindow", {
      get() {
        const frame = this;
        const target = contentWindow.call(frame);
        if (target && target.location.href === "about:blank") {
          target.postMessage = (message, targetOrigin) =>
            window.tokenPosts.push({
              url: message && message.url,
              targetOrigin,
              embedOrigin: new URL(frame.dataset.embedUrl).origin,
              carriesToken: JSON.stringify(message).includes("eyJ"),
            });
        }
        return target;
      },
    });
    // As in the walkthrough: renewals wait for the test to fire them.
    const later = [];
    const setTimeoutNow = window.setTimeout;
    window.setTimeout = (run, ms, ...args) => (ms >= 60000 ? later.push(run) : setTimeoutNow(run, ms, ...args));
    window.fireHeldTimers = () => later.splice(0).forEach((run) => run());
  });
  await page.goto(url);
  const frames = await page.$$eval("iframe.tile-frame", (f) => f.length);
  await page.waitForFunction((n) => window.tokenPosts.filter((p) => p.url === "/tile/load").length === n, {}, frames);
  await page.evaluate(() => window.fireHeldTimers());
  await page.waitForFunction((n) => window.tokenPosts.filter((p) => p.url === "/tile/token").length === n, {}, frames);
  const posts = await page.evaluate(() => window.tokenPosts);
  await page.close();
  return { frames, posts };
}

async function visit(name, url) {
  const response = await sessions[name].goto(url);
  return { status: response.status(), text: await sessions[name].$eval("body", (b) => b.textContent) };
}

// A script of Alice's: she makes an API token in My settings, and the JSON API lists her workspaces with it.
async function apiToken(name) {
  const page = sessions[name];
  await page.goto(`${base}/settings`);
  await page.type("#token-name", "walkthrough script");
  await click(page, "#make-token");
  const token = await page.$eval("#new-token-value", (e) => e.textContent.trim());
  await page.screenshot({ path: join(shots, `8-${name}-api-token.png`), fullPage: true });
  report.messages.token = await page.$eval("#message", (e) => e.textContent.trim()).catch(() => null);
  await checkPage(page, report.pages, shots, `p-${name}-settings-token`);
  const response = await fetch(`${base}/api/v1/workspaces`, { headers: { authorization: `Bearer ${token}` } });
  const workspaces = (await response.json()).workspaces.map((w) => w.name);
  await page.goto(`${base}/api/docs`);
  const operations = await page.$$eval(".op", (ops) => ops.length);
  await page.screenshot({ path: join(shots, `9-api-docs.png`), fullPage: true });
  await checkPage(page, report.pages, shots, "p-api-docs");
  await page.goto(`${base}/settings`);
  const listed = await page.$$eval("#tokens .token td:first-child", (cells) => cells.map((c) => c.textContent));
  return { status: response.status, workspaces, operations, tokenShownOnce: !(await page.content()).includes(token), listed };
}

// Seed 000's troubleshooting rows, as a person meets them: Dana connects with Carol's Power BI account, which
// has no Power BI license; first she cancels the consent, then she accepts and opens the tile list.
async function troubleshooting(name, account) {
  const page = sessions[name];
  await startConnecting(page, base, account);
  await page.waitForSelector("#cancel");
  await click(page, "#cancel");
  const declined = await page.$eval("#error", (e) => e.textContent.trim());
  await page.screenshot({ path: join(shots, `10-${name}-declined.png`), fullPage: true });
  // Get started asks Entra to let the person choose the account (prompt=select_account), so the sandbox asks
  // for the sign-in again rather than silently reusing the one it remembers.
  await startConnecting(page, base, account);
  await page.waitForSelector("#accept");
  await click(page, "#accept");
  const status = await page.$eval("#status", (e) => e.textContent.trim());
  await page.goto(`${base}/workspaces`);
  await page.type("#name", "Carol's tiles");
  await click(page, "#create");
  await click(page, "#pin-tiles");
  const unlicensed = await page.$eval("#problem", (e) => e.textContent.trim());
  await page.screenshot({ path: join(shots, `11-${name}-no-license.png`), fullPage: true });
  return { declined, status, unlicensed };
}

// The pages the story has not checked yet, and the error pages: each in the frame, each passing axe-core.
// Bob then signs out, and the sign-in page says so.
async function frames() {
  const alice = sessions.alice;
  await alice.goto(`${base}/`);
  await checkPage(alice, report.pages, shots, "p-alice-home");
  await alice.goto(`${base}/workspaces`);
  await checkPage(alice, report.pages, shots, "p-alice-workspaces");
  await alice.goto(report.alice.workspaceUrl);
  await settled(alice);
  await checkPage(alice, report.pages, shots, "p-alice-workspace");
  await alice.goto(`${report.alice.workspaceUrl}/pin`);
  await checkPage(alice, report.pages, shots, "p-alice-pin");
  const missing = await alice.goto(`${base}/no/such/page`);
  const notFound = missing.status();
  await checkPage(alice, report.pages, shots, "p-alice-404");
  // A form left open across a sign-in carries a CSRF token that is no longer the session's.
  await alice.goto(`${base}/settings`);
  await alice.$eval("#make-token", (b) => (b.form.querySelector("input[name=csrf]").value = "stale"));
  await alice.type("#token-name", "never made");
  await click(alice, "#make-token");
  const expired = await alice.$eval("h1", (h) => h.textContent.trim());
  await checkPage(alice, report.pages, shots, "p-alice-form-expired");
  const anonymous = await (await browser.createBrowserContext()).newPage();
  await anonymous.goto(`${base}/login`);
  await checkPage(anonymous, report.pages, shots, "p-anonymous-login");
  const anonymousMissing = (await anonymous.goto(`${base}/no/such/page`)).status();
  await checkPage(anonymous, report.pages, shots, "p-anonymous-404");
  await anonymous.close();
  const bob = sessions.bob;
  await bob.goto(`${base}/`);
  await click(bob, "#sign-out");
  report.messages.signOut = await bob.$eval("#message", (e) => e.textContent.trim()).catch(() => null);
  await checkPage(bob, report.pages, shots, "p-bob-signed-out");
  return { notFound, expired, anonymousMissing };
}

// The workspace page as a dashboard: Alice pins every tile she has to a new workspace and moves the small one
// to the end through its menu (by keyboard); the grid is measured at 1366 px and at a phone's 390 px.
async function dashboard(name) {
  const page = sessions[name];
  await page.setViewport({ width: 1366, height: 900 });
  const said = async () => page.$eval("#message", (e) => e.textContent.trim()).catch(() => null);
  await page.goto(`${base}/workspaces`);
  await page.type("#name", "Board");
  await click(page, "#create");
  const workspaceUrl = page.url();
  const created = await said();
  const reloaded = await page.reload().then(said);
  await page.goto(`${base}/workspaces`);
  await page.type("#name", " BOARD ");
  await click(page, "#create");
  const sameName = await page.$eval("body", (b) => b.innerText);
  await page.goto(workspaceUrl);
  await click(page, "#pin-tiles");
  await page.$$eval("#tile-list input[name=tile]:not(:disabled)", (boxes) => boxes.forEach((b) => (b.checked = true)));
  await click(page, "#pin");
  const pinned = await said();
  await page.goto(`${workspaceUrl}/pin`);
  const alreadyPinned = await page.$$eval("#tile-list input[name=tile]:disabled", (boxes) => boxes.length);
  await page.screenshot({ path: join(shots, `12-${name}-pin-1366.png`), fullPage: true });
  await page.goto(workspaceUrl);
  const small = '.tile[data-title="Total Sales"]';
  for (let moves = 0; moves < 10 && (await page.$eval("#tiles .tile:last-child", (t) => t.dataset.title)) !== "Total Sales"; moves++) {
    await page.focus(`${small} summary`);
    await page.keyboard.press("Enter");
    await page.waitForSelector(`${small} .move-down`, { visible: true });
    await page.focus(`${small} .move-down`);
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  }
  const moved = await said();
  await settled(page);
  const wide = await page.evaluate(measureGrid);
  await page.screenshot({ path: join(shots, `12-${name}-dashboard-1366.png`), fullPage: true });
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForFunction(() => document.getElementById("tiles").dataset.columns === "1");
  const phone = await page.evaluate(measureGrid);
  await page.screenshot({ path: join(shots, `12-${name}-dashboard-390.png`), fullPage: true });
  await page.goto(`${workspaceUrl}/pin`);
  const phonePin = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  await page.screenshot({ path: join(shots, `12-${name}-pin-390.png`), fullPage: true });
  await page.setViewport({ width: 1280, height: 900 });
  return { created, reloaded, sameName, pinned, alreadyPinned, moved, wide, phone, phonePin };
}

// Where each tile landed on the workspace grid: its box, and the grid cells it covers (from the grid's tracks).
function measureGrid() {
  const grid = document.getElementById("tiles");
  const box = grid.getBoundingClientRect();
  const style = getComputedStyle(grid);
  const columns = style.gridTemplateColumns.split(" ").filter(Boolean);
  const columnWidth = parseFloat(columns[0]);
  const rowHeight = parseFloat(style.gridAutoRows);
  const [columnGap, rowGap] = [parseFloat(style.columnGap) || 0, parseFloat(style.rowGap) || 0];
  const tiles = [...grid.querySelectorAll(".tile")].map((t) => {
    const r = t.getBoundingClientRect();
    const [x, y] = [r.left - box.left, r.top - box.top];
    return {
      title: t.dataset.title,
      rows: Number(t.dataset.rows),
      cols: Number(t.dataset.cols),
      box: { x, y, width: r.width, height: r.height },
      column: Math.round(x / (columnWidth + columnGap)),
      row: Math.round(y / (rowHeight + rowGap)),
      columnSpan: Math.round((r.width + columnGap) / (columnWidth + columnGap)),
      rowSpan: Math.round((r.height + rowGap) / (rowHeight + rowGap)),
      titlesShown: t.querySelectorAll(".tile-title").length,
    };
  });
  return {
    columns: columns.length,
    gridWidth: box.width,
    tiles,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    states: [...grid.querySelectorAll("iframe.tile-frame")].map((f) => f.dataset.state),
  };
}

// Seed 000's whole story with the keyboard only: every control is reached with Tab (in the page's own order)
// and worked with Enter, Space and typing; no click anywhere. Returns what each step left on the page.
async function keyboardOnly(name, account) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await watchPolicy(page, name);
  sessions[name] = page;
  const steps = {};
  const said = async () => page.$eval("#message", (e) => e.textContent.trim()).catch(() => null);
  const enter = (selector) => tabTo(page, selector).then(() => Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]));
  await page.goto(`${base}/login`);
  await tabTo(page, "#username");
  await page.keyboard.type(name);
  await tabTo(page, "#password");
  await page.keyboard.type(`${name}-demo-password`);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  steps.signedIn = await page.$eval("#user", (e) => e.textContent.trim());
  await enter('nav a[href="/settings"]');
  await enter("#get-started");
  // The sandbox's Entra sign-in: the account field may hold a remembered name, so it is selected and typed over.
  await tabTo(page, "#login");
  await page.keyboard.down("Control");
  await page.keyboard.press("KeyA");
  await page.keyboard.up("Control");
  await page.keyboard.type(`${account}@contoso.onmicrosoft.com`);
  await tabTo(page, "#passwd");
  await page.keyboard.type(`${account}-password`);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  await enter("#accept");
  steps.connected = await page.$eval("#status", (e) => e.textContent.trim());
  await enter('nav a[href="/workspaces"]');
  await tabTo(page, "#name");
  await page.keyboard.type("Keyboard board");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  steps.created = await said();
  await enter("#pin-tiles");
  // The first two tiles offered, ticked with Space.
  const boxes = await page.$$eval("#tile-list input[name=tile]:not(:disabled)", (inputs) => inputs.slice(0, 2).map((i) => `#${i.id}`));
  for (const box of boxes) {
    await tabTo(page, box);
    await page.keyboard.press("Space");
  }
  steps.ticked = await page.$$eval("#tile-list input[name=tile]:checked", (inputs) => inputs.length);
  await enter("#pin");
  steps.pinned = await said();
  await settled(page);
  steps.drawn = await page.$$eval("iframe.tile-frame", (frames) => frames.map((f) => f.dataset.state));
  await page.waitForSelector("#tiles[data-companies]");
  const company = (await page.$$eval("#company-list option", (o) => o.map((x) => x.value)))[0] || "USMF";
  await tabTo(page, "#company");
  await page.keyboard.type(company);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  steps.filtered = await page.$eval("#filter-badge", (e) => e.textContent.trim()).catch(() => null);
  await enter("#clear-filter");
  steps.cleared = await page.$("#filter-badge").then((badge) => badge === null);
  // The first tile's menu opens with Enter on its summary; Unpin is the menu's last item.
  const first = await page.$eval("#tiles .tile", (t) => t.dataset.title);
  await tabTo(page, "#tiles .tile:first-child summary");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#tiles .tile:first-child .unpin", { visible: true });
  await enter("#tiles .tile:first-child .unpin");
  steps.unpinned = { title: first, message: await said(), left: await page.$$eval("#tiles .tile", (t) => t.length) };
  await enter("#sign-out");
  steps.signedOut = await said();
  await context.close();
  delete sessions[name];
  return steps;
}

/// Presses Tab until the focus is on `selector` (at most 80 times); fails if the keyboard cannot reach it.
async function tabTo(page, selector) {
  for (let presses = 0; presses < 80; presses++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return presses;
    await page.keyboard.press("Tab");
  }
  const at = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 120));
  throw new Error(`${selector} cannot be reached with Tab on ${page.url()} (the focus is on ${at})`);
}
