import { test } from "node:test";
import assert from "node:assert/strict";
import { escapeHtml, renderContent, renderMessage, segments } from "../src/core/chatRender";
import { ChatModel } from "../src/core/chatModel";
import type { Message } from "../src/core/protocol";

function msg(id: string, seq: number, content: string, extra: Partial<Message> = {}): Message {
  return {
    id, seq, message_type: "chat", user_id: "alice", username: "alice", content, mentions: [], reactions: {},
    parent_id: null, timestamp: "2026-11-25T19:51:46.494Z", edited_at: null, deleted: false, ...extra,
  };
}

test("escapeHtml escapes the five characters", () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
});

test("an XSS message renders as text: no tag, no attribute survives", () => {
  const html = renderMessage(msg("m_1", 1, "<img src=x onerror=alert(1)>"), "bob");
  assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;"));
  assert.ok(!html.includes("<img"));
  const name = renderMessage(msg("m_2", 2, "hi", { username: `<script>alert(1)</script>` }), "bob");
  assert.ok(!name.includes("<script>"));
  const quote = renderContent(`src/"onmouseover=alert(1)".py:3`);
  assert.ok(!quote.includes(`"onmouseover`));
});

test("file:line references and @mentions become markup", () => {
  assert.deepEqual(segments("see src/app.py:4 @bob, ok"), [
    { kind: "text", text: "see " },
    { kind: "fileRef", text: "src/app.py:4", file: "src/app.py", line: 4 },
    { kind: "text", text: " " },
    { kind: "mention", text: "@bob", name: "bob" },
    { kind: "text", text: ", ok" },
  ]);
  const html = renderContent("look at ./src/app.py:12\nthen <b>");
  assert.ok(html.includes(`data-file="src/app.py" data-line="12"`));
  assert.ok(html.includes("<br>then &lt;b&gt;"));
  assert.deepEqual(segments("mail me a@b.c"), [{ kind: "text", text: "mail me a@b.c" }]);
});

test("own messages get edit and delete; others do not; tombstones show no text", () => {
  assert.ok(renderMessage(msg("m_1", 1, "x"), "alice").includes(`data-action="edit"`));
  assert.ok(!renderMessage(msg("m_1", 1, "x"), "bob").includes(`data-action="edit"`));
  const tomb = renderMessage(msg("m_1", 1, "", { deleted: true }), "alice");
  assert.ok(tomb.includes("message deleted") && !tomb.includes("data-action"));
});

test("reactions show counts and whether you reacted", () => {
  const html = renderMessage(msg("m_1", 1, "x", { reactions: { "👀": ["bob", "carol"], "🎉": [] } }), "bob");
  assert.ok(html.includes(`data-action="unreact" data-id="m_1" data-emoji="👀">👀 2</button>`));
  assert.ok(!html.includes("🎉"));
});

test("chat model: history replaces, new appends once, edits replace by id, pages prepend", () => {
  const model = new ChatModel();
  model.apply({ kind: "history", messages: [msg("m_3", 3, "c"), msg("m_2", 2, "b"), msg("m_c", 4, "comment", { message_type: "comment" })] });
  assert.deepEqual(model.list().map((m) => m.id), ["m_2", "m_3"]);
  assert.ok(model.apply({ kind: "new", message: msg("m_5", 5, "d") }));
  assert.ok(!model.apply({ kind: "new", message: msg("m_5", 5, "d") }));
  assert.ok(model.apply({ kind: "edited", message: msg("m_3", 3, "c2", { edited_at: "x" }) }));
  assert.ok(!model.apply({ kind: "edited", message: msg("m_0", 0, "unknown") }));
  model.apply({ kind: "deleted", message: msg("m_2", 2, "", { deleted: true }) });
  assert.equal(model.list()[0].deleted, true);
  assert.equal(model.oldestSeq(), 2);
  const added = model.prepend([msg("m_1", 1, "a"), { ...msg("m_c0", 1, "cm"), message_type: "comment" }, msg("m_2", 2, "")], false);
  assert.deepEqual(added.map((m) => m.id), ["m_1"]);
  assert.deepEqual(model.list().map((m) => m.id), ["m_1", "m_2", "m_3", "m_5"]);
  assert.equal(model.hasMore, false);
  assert.equal(model.list()[2].content, "c2");
});
