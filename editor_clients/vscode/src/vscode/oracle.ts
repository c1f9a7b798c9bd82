/**
 * For end-to-end tests only: when COLLAB_VSCODE_ORACLE names a file, write there (atomically) what
 * the extension shows: state, decorations, comment threads, diagnostics, chat DOM, the active editor.
 */
import * as fs from "node:fs";
import * as vscode from "vscode";
import { debounce } from "../core/debounce";
import type { Session } from "./session";

export class Oracle {
  private readonly file = process.env.COLLAB_VSCODE_ORACLE;
  readonly write = debounce(() => this.flush(), 100);

  constructor(private readonly session: Session) {}

  private flush(): void {
    if (!this.file) return;
    const s = this.session;
    const editor = vscode.window.activeTextEditor;
    const snapshot = {
      time: Date.now(),
      state: s.state,
      participants: s.participants,
      cursors: [...s.cursors.drawn].flatMap(([uri, list]) => list.map((d) => ({ uri, ...d }))),
      threads: s.comments.views,
      diagnostics: s.collabDiagnostics(),
      chat: { messages: s.chat.model.list().map((m) => ({ id: m.id, username: m.username, content: m.content })), dom: s.chat.dom },
      following: s.follow.following,
      activeEditor: editor
        ? {
            uri: editor.document.uri.toString(),
            selection: { line: editor.selection.active.line, character: editor.selection.active.character },
            visible: editor.visibleRanges.map((r) => ({ start: r.start.line, end: r.end.line })),
          }
        : null,
    };
    try {
      fs.writeFileSync(`${this.file}.tmp`, JSON.stringify(snapshot, null, 1));
      fs.renameSync(`${this.file}.tmp`, this.file);
    } catch {
      /* the test reads the next one */
    }
  }
}
