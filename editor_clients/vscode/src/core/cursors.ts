/** Where to draw remote cursors and selections (§6.3, §4.4): pure, so it can be tested. */
import type { Position, Range, RemoteCursor } from "./protocol";
import { colorFor } from "./colors";

export interface CursorDecoration {
  userId: string;
  name: string;
  color: string;
  /** An empty range at the caret. */
  caret: Range;
  /** The selection, sorted and clamped; absent when empty. */
  selection?: Range;
}

/** `lineLength(line)` gives the length in utf-16 units of a line of the local document. */
export interface DocumentShape { lineCount: number; lineLength(line: number): number }

export function comparePositions(a: Position, b: Position): number {
  return a.line - b.line || a.character - b.character;
}

/** Clamp a remote position into the local document (their file may be longer, §4.4). */
export function clampPosition(pos: Position, doc: DocumentShape): Position {
  if (doc.lineCount <= 0) return { line: 0, character: 0 };
  const line = Math.max(0, Math.min(pos.line, doc.lineCount - 1));
  const character = Math.max(0, Math.min(pos.character, doc.lineLength(line)));
  return { line, character };
}

export function sortedRange(a: Position, b: Position): Range {
  return comparePositions(a, b) <= 0 ? { start: a, end: b } : { start: b, end: a };
}

/** One decoration per remote cursor, in a stable order (by user id). */
export function cursorDecorations(cursors: RemoteCursor[], doc: DocumentShape): CursorDecoration[] {
  return [...cursors]
    .sort((a, b) => a.userId.localeCompare(b.userId))
    .map((cursor) => {
      const at = clampPosition(cursor.position, doc);
      const decoration: CursorDecoration = {
        userId: cursor.userId,
        name: cursor.name,
        color: colorFor(cursor.colorIndex, cursor.userId),
        caret: { start: at, end: at },
      };
      if (cursor.selection) {
        const range = sortedRange(
          clampPosition(cursor.selection.anchor, doc),
          clampPosition(cursor.selection.active, doc),
        );
        if (comparePositions(range.start, range.end) !== 0) decoration.selection = range;
      }
      return decoration;
    });
}

/** Group decorations by colour (one VS Code decoration type per colour and kind). */
export function byColor(decorations: CursorDecoration[]): Map<string, CursorDecoration[]> {
  const groups = new Map<string, CursorDecoration[]>();
  for (const d of decorations) {
    const list = groups.get(d.color) ?? [];
    list.push(d);
    groups.set(d.color, list);
  }
  return groups;
}
