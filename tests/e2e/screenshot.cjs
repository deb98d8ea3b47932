// Open one Airflow UI page in headless Chromium (Debian's /usr/bin/chromium via playwright-core),
// wait for an operator extra link, screenshot the page, and print what was found as one JSON line.
//
// Usage: node screenshot.cjs '{"url": ..., "linkName": ..., "linkHref": ..., "screenshot": ...,
//                              "userDataDir": ..., "executablePath": ..., "timeoutMs": ...}'
"use strict";

const { chromium } = require("playwright-core");

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function main() {
  const options = JSON.parse(process.argv[2]);
  const result = { url: options.url, found: false, screenshot: options.screenshot };
  const context = await chromium.launchPersistentContext(options.userDataDir, {
    executablePath: options.executablePath || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 1440, height: 1000 },
  });
  try {
    const page = await context.newPage();
    const consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    const response = await page.goto(options.url, { waitUntil: "domcontentloaded", timeout: options.timeoutMs });
    result.status = response ? response.status() : null;
    // The extra-link button is an <a> whose href is the link's URL; the UI renders it once the
    // task instance and its links have been fetched.
    const link = page.locator(`a[href="${options.linkHref}"]`).first();
    try {
      await link.waitFor({ state: "visible", timeout: options.timeoutMs });
      await link.scrollIntoViewIfNeeded();
      await link.evaluate((element) => {
        element.style.outline = "3px solid #e8590c";
        element.style.outlineOffset = "2px";
      });
      result.found = true;
      result.text = (await link.innerText()).trim();
      result.href = await link.getAttribute("href");
      result.linksNamed = await page.getByText(options.linkName, { exact: true }).count();
    } catch (error) {
      result.error = String(error);
    }
    await page.waitForTimeout(500);
    result.finalUrl = page.url();
    result.title = await page.title();
    result.bodyText = (await page.locator("body").innerText()).slice(0, 3000);
    result.consoleErrors = consoleErrors.slice(0, 10);
    await page.screenshot({ path: options.screenshot, fullPage: true });
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ found: false, error: String(error && error.stack ? error.stack : error) }) + "\n");
  process.exit(1);
});
