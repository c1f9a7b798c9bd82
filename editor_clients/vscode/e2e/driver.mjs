// Drives a real VS Code (code-server) in Debian's headless Chromium for tests/vscode/.
// Reads one JSON request per line on stdin, answers one JSON line on stdout: {id, ok, result | error}.
import { chromium } from "playwright-core";
import * as readline from "node:readline";

let browser;
let page;
const TIMEOUT = 20000;

async function cursorLabels() {
  return page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll(".monaco-editor .view-lines span, .monaco-editor .view-lines span *")) {
      const after = getComputedStyle(el, "::after").content;
      if (after && after !== "none" && after !== "normal" && after !== '""') {
        const box = el.getBoundingClientRect();
        out.push({ content: after, x: box.right, y: box.top });
      }
    }
    return out;
  });
}

async function chatFrame() {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if (await frame.$("#messages")) return frame;
      } catch {}
    }
    await page.waitForTimeout(200);
  }
  throw new Error("chat webview frame not found");
}

async function quickInputRow(text) {
  await page.locator(".quick-input-widget .monaco-list-row", { hasText: text }).first().waitFor({ timeout: TIMEOUT });
}

const ops = {
  async open({ url, executablePath }) {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-default-apps", "--disable-sync", "--metrics-recording-only", "--disable-domain-reliability"],
    });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    // VS Code's clipboard API is navigator.clipboard in the browser: let the test read what it copied.
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(url).origin });
    page = await context.newPage();
    await page.goto(url);
    await page.locator(".monaco-workbench").waitFor({ timeout: 60000 });
    await page.locator(".statusbar").waitFor({ timeout: 60000 });
    return true;
  },
  // Run a command from the palette (F1).
  async command({ title }) {
    await page.locator(".monaco-workbench").click({ position: { x: 5, y: 300 }, force: true }).catch(() => {});
    await page.keyboard.press("F1");
    await page.locator(".quick-input-widget input").waitFor({ timeout: TIMEOUT });
    await page.keyboard.insertText(title);
    // Click the row named exactly `title`: a recently used command that also matches comes first.
    const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\.\\.\\.|…)?$`);
    const row = page.locator(".quick-input-widget .monaco-list-row").filter({ has: page.locator(".label-name", { hasText: exact }) });
    await row.first().click({ timeout: TIMEOUT });
    return true;
  },
  // Answer an input box or quick pick: replace its text, wait for a matching row if asked, press Enter.
  // `expect`: text that shows only once the wanted input box or quick pick is open (its prompt or a row).
  async answer({ text, row, expect }) {
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ timeout: TIMEOUT });
    if (expect) await page.locator(".quick-input-widget", { hasText: expect }).first().waitFor({ timeout: TIMEOUT });
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText(text);
    if (row) await quickInputRow(row);
    await page.keyboard.press("Enter");
    return true;
  },
  async quickOpen({ file }) {
    await page.keyboard.press("F1");
    await page.locator(".quick-input-widget input").waitFor({ timeout: TIMEOUT });
    await page.keyboard.press("Backspace"); // drop the '>' of the command palette: quick open
    await page.keyboard.insertText(file);
    await quickInputRow(file.split("/").pop());
    await page.keyboard.press("Enter");
    return true;
  },
  // Wait until a decoration's ::after label shows `name`; returns every label seen.
  async cursorLabels({ name }) {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const labels = await cursorLabels();
      if (labels.some((l) => l.content.includes(name)) || Date.now() > deadline) return labels;
      await page.waitForTimeout(200);
    }
  },
  // The inner text of the first `selector` element that contains `contains` (waits for it).
  async text({ selector, contains }) {
    const element = page.locator(selector, { hasText: contains }).first();
    await element.waitFor({ timeout: TIMEOUT });
    return element.innerText();
  },
  // Wait until no `selector` element containing `contains` is shown.
  async gone({ selector, contains }) {
    await page.locator(selector, { hasText: contains }).first().waitFor({ state: "hidden", timeout: TIMEOUT });
    return true;
  },
  async chat() {
    const frame = await chatFrame();
    return frame.evaluate(() => {
      const list = document.getElementById("messages");
      return { text: list.innerText, html: list.innerHTML, injected: list.querySelectorAll("img, script, iframe").length, csp: document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute("content") };
    });
  },
  async chatSend({ text }) {
    const frame = await chatFrame();
    await frame.locator("#input").click();
    await frame.locator("#input").fill(text);
    await frame.locator("#input").press("Enter");
    return true;
  },
  // Click the first `selector` element containing `contains` (in the chat webview with `chat`),
  // after hovering `hover` (a row whose inline actions show on hover) if given.
  async click({ selector, contains, hover, chat }) {
    const root = chat ? await chatFrame() : page;
    if (hover) {
      const row = root.locator(hover.selector, { hasText: hover.contains }).first();
      await row.hover({ timeout: TIMEOUT });
      await row.locator(selector).first().click({ timeout: TIMEOUT });
      return true;
    }
    await root.locator(selector, contains === undefined ? {} : { hasText: contains }).first().click({ timeout: TIMEOUT });
    return true;
  },
  // Type into whatever has the focus, key by key (input events fire).
  async type({ text }) {
    await page.keyboard.type(text);
    return true;
  },
  // The chat composer: type `text` key by key, return the @mention suggestions shown.
  async chatType({ text, expect }) {
    const frame = await chatFrame();
    await frame.locator("#input").click();
    await frame.locator("#input").pressSequentially(text);
    if (expect) await frame.locator("#suggestions .suggestion", { hasText: expect }).first().waitFor({ timeout: TIMEOUT });
    return frame.evaluate(() => ({
      value: document.getElementById("input").value,
      suggestions: [...document.querySelectorAll("#suggestions .suggestion")].map((e) => e.textContent),
      hidden: document.getElementById("suggestions").hidden,
    }));
  },
  async chatKey({ key }) {
    const frame = await chatFrame();
    await frame.locator("#input").press(key);
    return frame.evaluate(() => document.getElementById("input").value);
  },
  // Scroll the chat list up with the mouse wheel until its first message has the line `until`.
  async chatScrollUp({ until }) {
    const frame = await chatFrame();
    const list = frame.locator("#messages");
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const first = await frame.evaluate(() => document.querySelector("#messages .message")?.innerText ?? "");
      if (first.split("\n").includes(until)) return { first, scrollTop: await list.evaluate((e) => e.scrollTop) };
      if (Date.now() > deadline) throw new Error(`the chat never showed ${until}; first message: ${first}`);
      await list.hover();
      await page.mouse.wheel(0, -3000);
      await page.waitForTimeout(200);
    }
  },
  async clipboard() {
    return page.evaluate(() => navigator.clipboard.readText());
  },
  // The browser window loses or gets the focus, as VS Code's host service sees it.
  async windowFocus({ focused }) {
    await page.evaluate((focused) => {
      document.hasFocus = () => focused;
      window.dispatchEvent(new FocusEvent(focused ? "focus" : "blur"));
    }, focused);
    return true;
  },
  async press({ key }) {
    await page.keyboard.press(key);
    return true;
  },
  async screenshot({ path }) {
    await page.screenshot({ path });
    return path;
  },
  async close() {
    await browser?.close();
    return true;
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  try {
    const result = await ops[request.op](request);
    process.stdout.write(JSON.stringify({ id: request.id, ok: true, result }) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ id: request.id, ok: false, error: String(error?.stack ?? error) }) + "\n");
  }
  if (request.op === "close") break;
}
process.exit(0);
