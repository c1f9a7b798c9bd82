import { test } from "node:test";
import assert from "node:assert/strict";
import { completeMention, mentionAt, mentionCandidates } from "../src/core/mentions";
import { commentRange, isThreadId, threadView } from "../src/core/threads";
import { participantRows } from "../src/core/participants";
import { statusView, formatCount } from "../src/core/statusText";
import { findSidecar, SidecarNotFound } from "../src/core/sidecarPath";
import { errorMessage, pendingMessage } from "../src/core/errors";
import { FollowController, type FollowPort } from "../src/core/follow";
import { debounce, FocusPresence } from "../src/core/debounce";
import { OFFLINE_STATE, type Message, type Participant, type ThreadInfo } from "../src/core/protocol";

test("@mention completion", () => {
  assert.deepEqual(mentionAt("hi @al", 6), { start: 3, prefix: "al" });
  assert.equal(mentionAt("mail a@b", 8), undefined);
  assert.deepEqual(mentionCandidates(["alice", "bob", "Albert", "sal", "alice"], "al", "bob"), ["Albert", "alice", "sal"]);
  const q = mentionAt("hi @al and", 6)!;
  assert.deepEqual(completeMention("hi @al and", q, 6, "alice"), { text: "hi @alice  and", caret: 10 });
});

function comment(id: string, user: string, extra: Partial<Message> = {}): Message {
  return { id, seq: 1, message_type: "comment", user_id: user, username: user, content: `by ${user}`, timestamp: "2026-11-25T19:51:47.147Z", line: 4, end_line: 5, ...extra };
}

test("threads: anchor from currentLine, else the stored 1-based line; own comments marked", () => {
  const info: ThreadInfo = {
    threadId: "m_a", file: "src/app.py", uri: "file:///w/src/app.py", line: 4, currentLine: 3, outdated: false, resolved: false,
    comments: [comment("m_a", "alice"), comment("m_b", "bob", { parent_id: "m_a" }), comment("m_c", "bob", { deleted: true })],
  };
  const view = threadView(info, "bob")!;
  assert.equal(view.startLine, 3);
  assert.equal(view.endLine, 4);
  assert.equal(view.label, "alice · 2 replies");
  assert.deepEqual(view.comments.map((c) => [c.author, c.own]), [["alice", false], ["bob", true]]);
  assert.equal(threadView({ ...info, currentLine: null }, null)!.startLine, 3);
  assert.equal(threadView({ ...info, uri: null }, null), undefined);
  // Deleting the first comment deletes the thread: listThreads keeps a tombstone, the editor shows nothing.
  assert.equal(threadView({ ...info, comments: [comment("m_a", "alice", { deleted: true, content: "" }), comment("m_b", "bob")] }, "bob"), undefined);
  assert.ok(isThreadId("m_a") && !isThreadId("0123456789abcdef"));
  assert.deepEqual(commentRange({ line: 2, character: 4 }, { line: 2, character: 4 }), { line: 2 });
  assert.deepEqual(commentRange({ line: 2, character: 0 }, { line: 4, character: 0 }), { range: { start: { line: 2, character: 0 }, end: { line: 4, character: 0 } } });
});

function participant(userId: string, extra: Partial<Participant> = {}): Participant {
  return { userId, name: userId, role: "editor", kind: "human", status: "active", online: true, colorIndex: 0, color: "#e6194b", file: null, line: null, following: null, isYou: false, ...extra };
}

test("participants: you first, then online hosts; file:line, following, context values", () => {
  const rows = participantRows(
    [participant("zoe", { online: false, status: "away" }), participant("bob", { isYou: true }), participant("alice", { role: "host", file: "src/app.py", line: 5 }), participant("carl", { following: "alice" })],
    "alice",
  );
  assert.deepEqual(rows.map((r) => r.userId), ["bob", "alice", "carl", "zoe"]);
  assert.equal(rows[1].description, "host · active · src/app.py:5");
  assert.equal(rows[2].description, "editor · active · follows alice");
  assert.equal(rows[3].description, "editor · offline");
  assert.match(rows[0].contextValue, /\byou\b/);
  assert.match(rows[1].contextValue, /\bother\b.*followed/);
  assert.ok(rows[1].label.includes("👁"));
  const [agent] = participantRows([participant("helper", { kind: "agent" })], null);
  assert.equal(agent.label, "🤖 helper");
});

test("status bar: connection, participants, tokens, health, following", () => {
  const connected = { ...OFFLINE_STATE, state: "connected" as const, title: "Checkout bug", participantCount: 3, tokenCount: 18250, healthScore: 92.5, following: "alice" };
  const view = statusView(connected, [participant("alice", { name: "Alice" })]);
  assert.equal(view.text, "$(live-share) Checkout bug  $(person) 3  $(symbol-number) 18k  $(heart) 93  $(eye) following Alice");
  assert.equal(view.warning, false);
  assert.match(statusView({ ...connected, state: "reconnecting", detail: "boom" }).text, /reconnecting/);
  const off = statusView({ ...OFFLINE_STATE, detail: "REMOVED: you were removed" });
  assert.equal(off.text, "$(circle-slash) Collab: offline");
  assert.match(off.tooltip, /REMOVED/);
  assert.equal(formatCount(1234), "1.2k");
  assert.equal(formatCount(2_500_000), "2.5M");
});

test("sidecar search order: setting, then the Python environment, then PATH", () => {
  const base = { workspaceFolders: ["/ws"], env: { VIRTUAL_ENV: "/venv", PATH: "/usr/bin:/opt/bin" }, home: "/home/u", platform: "linux" as const };
  const has = (files: string[]) => (f: string) => files.includes(f);
  assert.deepEqual(findSidecar({ ...base, setting: "~/bin/collab-lsp", isExecutable: has(["/home/u/bin/collab-lsp", "/venv/bin/collab-lsp"]) }), { command: "/home/u/bin/collab-lsp", source: "setting" });
  assert.throws(() => findSidecar({ ...base, setting: "tools/collab-lsp", isExecutable: has(["/venv/bin/collab-lsp"]) }), (e: unknown) => e instanceof SidecarNotFound && e.settingPath === "/ws/tools/collab-lsp");
  assert.deepEqual(findSidecar({ ...base, setting: "", isExecutable: has(["/venv/bin/collab-lsp", "/usr/bin/collab-lsp"]) }).source, "python environment");
  assert.deepEqual(findSidecar({ ...base, setting: undefined, isExecutable: has(["/ws/.venv/bin/collab-lsp"]) }).command, "/ws/.venv/bin/collab-lsp");
  assert.deepEqual(findSidecar({ ...base, setting: undefined, isExecutable: has(["/opt/bin/collab-lsp"]) }), { command: "/opt/bin/collab-lsp", source: "PATH" });
  assert.throws(() => findSidecar({ ...base, setting: undefined, isExecutable: () => false }), /pip install collab-lsp/);
});

test("errors: -32803 refusals name the code and give advice; pending results say so", () => {
  const e = { code: -32803, message: "not allowed", data: { errorCode: "PERMISSION_DENIED", field: null } };
  assert.equal(errorMessage("invite", e), "Collab: invite failed: not allowed (PERMISSION_DENIED) — your role does not allow this");
  assert.equal(errorMessage("join", new Error("boom")), "Collab: join failed: boom");
  assert.match(pendingMessage("send chat", { status: "pending", state: "reconnecting" }) ?? "", /when the relay is back/);
  assert.equal(pendingMessage("send chat", { status: "acknowledged", id: "m_1", seq: 1 }), undefined);
});

test("follow: reveals only changes of place; stops when the user navigates", async () => {
  const calls: string[] = [];
  const port: FollowPort = {
    reveal: async (uri, s, e, c) => void calls.push(`reveal ${uri} ${s}-${e} @${c}`),
    unfollow: async () => void calls.push("unfollow"),
  };
  let now = 0;
  const follow = new FollowController(port, () => now);
  const at = (line: number) => ({ userId: "alice", name: "alice", file: "a.py", uri: "file:///w/a.py", line, range: { start: { line: line - 1, character: 0 }, end: { line: line + 20, character: 0 } } });
  assert.equal(await follow.onFollow(at(5)), false); // not following yet
  follow.setFollowing("alice");
  assert.equal(await follow.onFollow(at(5)), true);
  assert.equal(await follow.onFollow(at(5)), false); // same place again
  assert.equal(await follow.onFollow({ ...at(9), userId: "carl" }), false);
  now = 100;
  assert.equal(await follow.onUserNavigation(true), false); // our own reveal's echo
  now = 1000;
  assert.equal(await follow.onUserNavigation(false), false); // programmatic
  assert.equal(await follow.onUserNavigation(true), true);
  assert.equal(follow.following, null);
  assert.deepEqual(calls, ["reveal file:///w/a.py 4-25 @4", "unfollow"]);
});

test("debounce keeps the last call of a burst; focus presence goes idle then away, then active", async () => {
  const seen: number[] = [];
  const d = debounce((n: number) => seen.push(n), 10);
  d(1); d(2); d(3);
  await new Promise((r) => setTimeout(r, 30));
  d(4); d.flush();
  assert.deepEqual(seen, [3, 4]);
  const statuses: string[] = [];
  const p = new FocusPresence((s) => statuses.push(s), 10);
  p.focusChanged(false);
  await new Promise((r) => setTimeout(r, 30));
  p.focusChanged(true);
  p.focusChanged(true);
  p.dispose();
  assert.deepEqual(statuses, ["idle", "away", "active"]);
});
