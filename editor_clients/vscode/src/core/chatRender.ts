/** Chat message rendering: every piece of text is HTML-escaped; file:line references and @mentions become markup. */
import type { Message } from "./protocol";
import { colorFor } from "./colors";

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export type Segment =
  | { kind: "text"; text: string }
  | { kind: "fileRef"; text: string; file: string; line: number }
  | { kind: "mention"; text: string; name: string };

// src/app.py:4, ./a/b.ts:12, README.md:3 — a path with an extension, then :line.
const TOKEN = /((?:\.{0,2}\/)?[\w.-]+(?:\/[\w.-]+)*\.[A-Za-z0-9]+):(\d+)|(^|[^\w@])@([\w.-]+)/g;

/** Split raw text into plain text, file:line references and @mentions. */
export function segments(text: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    let start = match.index ?? 0;
    if (match[4] !== undefined) start += match[3].length; // keep the character before '@' as text
    if (start > last) out.push({ kind: "text", text: text.slice(last, start) });
    if (match[1] !== undefined) {
      out.push({ kind: "fileRef", text: match[0], file: match[1].replace(/^\.\//, ""), line: Number(match[2]) });
    } else {
      out.push({ kind: "mention", text: `@${match[4]}`, name: match[4] });
    }
    last = (match.index ?? 0) + match[0].length;
  }
  if (last < text.length) out.push({ kind: "text", text: text.slice(last) });
  return out;
}

/** The message body as safe HTML. */
export function renderContent(text: string): string {
  return segments(text)
    .map((s) => {
      switch (s.kind) {
        case "text":
          return escapeHtml(s.text).replace(/\n/g, "<br>");
        case "fileRef":
          return `<a href="#" class="file-ref" data-file="${escapeHtml(s.file)}" data-line="${s.line}">${escapeHtml(s.text)}</a>`;
        case "mention":
          return `<span class="mention">${escapeHtml(s.text)}</span>`;
      }
    })
    .join("");
}

/** "19:51" from an ISO timestamp (local time), or "" when unparsable. */
export function shortTime(timestamp: string, now: Date = new Date()): string {
  const when = new Date(timestamp);
  if (Number.isNaN(when.getTime())) return "";
  const hhmm = `${String(when.getHours()).padStart(2, "0")}:${String(when.getMinutes()).padStart(2, "0")}`;
  if (when.toDateString() === now.toDateString()) return hhmm;
  return `${when.getFullYear()}-${String(when.getMonth() + 1).padStart(2, "0")}-${String(when.getDate()).padStart(2, "0")} ${hhmm}`;
}

/** One message as an HTML fragment for the chat webview. `you` is your user id (own messages get edit/delete). */
export function renderMessage(message: Message, you: string | null, now?: Date): string {
  const id = escapeHtml(message.id);
  const own = you !== null && message.user_id === you;
  const color = colorFor(null, message.user_id);
  const head =
    `<div class="head"><span class="author" style="color:${color}">${escapeHtml(message.username)}</span>` +
    `<span class="time">${escapeHtml(shortTime(message.timestamp, now))}</span>` +
    (message.edited_at && !message.deleted ? `<span class="edited">(edited)</span>` : "") +
    `</div>`;
  if (message.deleted) {
    return `<div class="message deleted" data-id="${id}" data-seq="${message.seq}">${head}<div class="body"><em>message deleted</em></div></div>`;
  }
  const reactions = Object.entries(message.reactions ?? {})
    .filter(([, users]) => users.length > 0)
    .map(([emoji, users]) => {
      const mine = you !== null && users.includes(you);
      return `<button class="reaction${mine ? " mine" : ""}" data-action="${mine ? "unreact" : "react"}" data-id="${id}" data-emoji="${escapeHtml(emoji)}">${escapeHtml(emoji)} ${users.length}</button>`;
    })
    .join("");
  const actions =
    `<button class="act" data-action="pick-reaction" data-id="${id}" title="React">☺</button>` +
    (own
      ? `<button class="act" data-action="edit" data-id="${id}" title="Edit">✎</button>` +
        `<button class="act" data-action="delete" data-id="${id}" title="Delete">🗑</button>`
      : "");
  const reply = message.parent_id ? " reply" : "";
  return (
    `<div class="message${own ? " own" : ""}${reply}" data-id="${id}" data-seq="${message.seq}">${head}` +
    `<div class="body">${renderContent(message.content)}</div>` +
    `<div class="footer"><span class="reactions">${reactions}</span><span class="actions">${actions}</span></div></div>`
  );
}
