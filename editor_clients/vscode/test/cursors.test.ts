import { test } from "node:test";
import assert from "node:assert/strict";
import { byColor, clampPosition, cursorDecorations } from "../src/core/cursors";
import type { RemoteCursor } from "../src/core/protocol";

const lines = ["import os", "", "", "def main():", "    print('héllo😀 world')", "    return 0"];
const doc = { lineCount: lines.length, lineLength: (l: number) => lines[l].length };

function cursor(userId: string, line: number, character: number, extra: Partial<RemoteCursor> = {}): RemoteCursor {
  return { userId, name: userId, kind: "human", colorIndex: 1, color: "#3cb44b", position: { line, character }, ...extra };
}

test("a caret is an empty range at the position, in utf-16 units", () => {
  const [d] = cursorDecorations([cursor("alice", 4, 18)], doc);
  assert.deepEqual(d.caret, { start: { line: 4, character: 18 }, end: { line: 4, character: 18 } });
  assert.equal(d.name, "alice");
  assert.equal(d.color, "#3cb44b");
  assert.equal(d.selection, undefined);
});

test("positions past the end are clamped to the local document", () => {
  assert.deepEqual(clampPosition({ line: 99, character: 3 }, doc), { line: 5, character: 3 });
  assert.deepEqual(clampPosition({ line: 3, character: 99 }, doc), { line: 3, character: 11 });
  assert.deepEqual(clampPosition({ line: 1, character: 0 }, { lineCount: 0, lineLength: () => 0 }), { line: 0, character: 0 });
});

test("backwards selections are sorted; empty ones dropped", () => {
  const back = cursor("alice", 4, 4, { selection: { anchor: { line: 4, character: 18 }, active: { line: 4, character: 4 } } });
  const [d] = cursorDecorations([back], doc);
  assert.deepEqual(d.selection, { start: { line: 4, character: 4 }, end: { line: 4, character: 18 } });
  const empty = cursor("bob", 1, 0, { colorIndex: 0, selection: { anchor: { line: 1, character: 0 }, active: { line: 1, character: 0 } } });
  assert.equal(cursorDecorations([empty], doc)[0].selection, undefined);
});

test("decorations are ordered by user and grouped by colour", () => {
  const ds = cursorDecorations([cursor("zed", 0, 0, { colorIndex: 0 }), cursor("alice", 1, 0), cursor("amy", 2, 0)], doc);
  assert.deepEqual(ds.map((d) => d.userId), ["alice", "amy", "zed"]);
  const groups = byColor(ds);
  assert.equal(groups.get("#3cb44b")?.length, 2);
  assert.equal(groups.get("#e6194b")?.length, 1);
});

test("an empty cursor list draws nothing (the person left or went to another file)", () => {
  assert.deepEqual(cursorDecorations([], doc), []);
});
