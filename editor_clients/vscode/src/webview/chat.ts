/* The chat webview's script (bundled to media/chat.js). HTML arrives already escaped from the extension. */
import { completeMention, mentionAt, mentionCandidates } from "../core/mentions";

declare function acquireVsCodeApi(): { postMessage(message: unknown): void };

const vscode = acquireVsCodeApi();
const list = document.getElementById("messages") as HTMLDivElement;
const older = document.getElementById("older") as HTMLDivElement;
const input = document.getElementById("input") as HTMLTextAreaElement;
const suggestions = document.getElementById("suggestions") as HTMLDivElement;
let names: string[] = [];
let you: string | null = null;
let shown: string[] = [];
let selected = 0;
let loading = false;

function report(): void {
  const injected = list.querySelectorAll("img, script, iframe, object, embed, svg, style, link").length;
  vscode.postMessage({ type: "rendered", text: list.innerText, injected, count: list.children.length });
}

window.addEventListener("message", (event: MessageEvent) => {
  const m = event.data as { type: string; html?: string[]; hasMore?: boolean; names?: string[]; you?: string | null };
  if (m.type === "reset" && m.html) {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const previousHeight = list.scrollHeight;
    const wasLoading = loading;
    list.innerHTML = m.html.join("");
    older.hidden = !m.hasMore;
    if (wasLoading) {
      list.scrollTop = list.scrollHeight - previousHeight; // keep the view still when older messages arrive
      loading = false;
    } else if (atBottom) {
      list.scrollTop = list.scrollHeight;
    }
    report();
  } else if (m.type === "participants") {
    names = m.names ?? [];
    you = m.you ?? null;
  }
});

function loadOlder(): void {
  if (loading || older.hidden) return;
  loading = true;
  vscode.postMessage({ type: "loadOlder" });
}

list.addEventListener("scroll", () => {
  if (list.scrollTop < 20) loadOlder();
});
(document.getElementById("load-older") as HTMLButtonElement).addEventListener("click", loadOlder);

list.addEventListener("click", (event) => {
  const target = (event.target as HTMLElement).closest("[data-action], .file-ref") as HTMLElement | null;
  if (!target) return;
  event.preventDefault();
  if (target.classList.contains("file-ref")) {
    vscode.postMessage({ type: "openFile", file: target.dataset.file, line: Number(target.dataset.line) });
  } else {
    vscode.postMessage({ type: target.dataset.action, id: target.dataset.id, emoji: target.dataset.emoji });
  }
});

function renderSuggestions(): void {
  suggestions.hidden = shown.length === 0;
  suggestions.replaceChildren(
    ...shown.map((name, i) => {
      const row = document.createElement("div");
      row.className = i === selected ? "suggestion selected" : "suggestion";
      row.textContent = `@${name}`; // textContent: names are never parsed as HTML
      row.addEventListener("mousedown", (e) => {
        e.preventDefault();
        accept(name);
      });
      return row;
    }),
  );
}

function updateSuggestions(): void {
  const query = mentionAt(input.value, input.selectionStart ?? input.value.length);
  shown = query ? mentionCandidates(names, query.prefix, you ?? undefined).slice(0, 8) : [];
  selected = 0;
  renderSuggestions();
}

function accept(name: string): void {
  const caret = input.selectionStart ?? input.value.length;
  const query = mentionAt(input.value, caret);
  if (!query) return;
  const done = completeMention(input.value, query, caret, name);
  input.value = done.text;
  input.setSelectionRange(done.caret, done.caret);
  shown = [];
  renderSuggestions();
  input.focus();
}

input.addEventListener("input", updateSuggestions);
input.addEventListener("keydown", (event) => {
  if (shown.length) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      selected = (selected + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      renderSuggestions();
      event.preventDefault();
      return;
    }
    if (event.key === "Tab" || event.key === "Enter") {
      accept(shown[selected]);
      event.preventDefault();
      return;
    }
    if (event.key === "Escape") {
      shown = [];
      renderSuggestions();
      return;
    }
  }
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    const text = input.value;
    if (text.trim()) {
      vscode.postMessage({ type: "send", text });
      input.value = "";
    }
  }
});

vscode.postMessage({ type: "ready" });
