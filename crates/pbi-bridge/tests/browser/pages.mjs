// What the walkthrough checks on every pbi-bridge page it visits: the frame (top bar, areas, the current area,
// the user and Sign out), axe-core's WCAG 2.1 A and AA rules, no horizontal scroll on a 390 px wide phone, and
// a screenshot at 1366 px and at 390 px. Every wait is for something on the page, never for a length of time.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
// Injected through the DevTools protocol (page.evaluate), which the pages' Content-Security-Policy does not
// govern: a <script> tag added to the page would be refused by script-src 'self'.
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const WIDE = { width: 1366, height: 900 };
// Width only: changing isMobile or hasTouch makes puppeteer reload the page, which would use up its message.
const PHONE = { width: 390, height: 844 };

/// Checks the page `page` is on and adds what it found to `pages` (`file` names its screenshots).
export async function checkPage(page, pages, shots, file) {
  const frame = await page.evaluate(() => ({
    topbar: Boolean(document.querySelector("#topbar #brand")),
    areas: [...document.querySelectorAll("#areas a")].map((a) => a.textContent.trim()),
    current: [...document.querySelectorAll('[aria-current="page"]')].map((e) => e.textContent.trim()),
    user: document.querySelector("#user")?.textContent.trim() ?? null,
    signOut: Boolean(document.querySelector("#sign-out")),
    messages: [...document.querySelectorAll(".message-bar")].map((m) => m.textContent.trim().slice(0, 200)),
    title: document.title,
    // Times the server wrote in UTC, and how many pbi-bridge.js rewrote into the reader's zone.
    times: document.querySelectorAll("time[data-local]").length,
    localTimes: document.querySelectorAll('time[data-local][data-localised="true"]').length,
  }));
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(axeSource);
  // In light and in dark mode (prefers-color-scheme), each with its own colours to check.
  const violations = [];
  for (const scheme of ["light", "dark"]) {
    await colourScheme(page, scheme);
    violations.push(...(await axeViolations(page, scheme)));
  }
  await colourScheme(page, "light");
  const before = page.viewport();
  await page.setViewport(WIDE);
  await page.screenshot({ path: join(shots, `${file}-1366.png`), fullPage: true });
  await page.setViewport(PHONE);
  await page.waitForFunction((width) => document.documentElement.clientWidth === width, {}, PHONE.width);
  const phone = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    // What sticks out, to name in a failure: the outermost elements whose right edge passes the screen's,
    // outside any box that scrolls on its own (a wide table in its scroll box is fine).
    const name = (e) => e.tagName.toLowerCase() + (e.id ? `#${e.id}` : "") + (e.classList.length ? `.${[...e.classList].join(".")}` : "");
    const wide = [...document.body.querySelectorAll("*")]
      .filter((e) => e.getBoundingClientRect().right > width + 0.5 && !e.closest(".table-wrap > *"))
      .filter((e) => !e.parentElement || e.parentElement.getBoundingClientRect().right <= width + 0.5 || e.parentElement === document.body)
      .slice(0, 5)
      .map((e) => `${name(e)} (${Math.round(e.getBoundingClientRect().width)} px)`);
    return { scrollWidth: document.documentElement.scrollWidth, clientWidth: width, wide };
  });
  await page.screenshot({ path: join(shots, `${file}-390.png`), fullPage: true });
  await page.setViewport(before);
  pages.push({ file, url: page.url(), frame, violations, phone });
  return frame;
}

async function axeViolations(page, scheme) {
  return page.evaluate(async (scheme) => {
    const results = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
    });
    return results.violations.map((v) => ({
      scheme,
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    }));
  }, scheme);
}

/// Switches the page to `scheme` and waits until the colours' transitions have run (axe-core would otherwise
/// measure colours halfway).
async function colourScheme(page, scheme) {
  await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: scheme }]);
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running"));
}
