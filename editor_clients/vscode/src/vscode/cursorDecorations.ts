/** Remote cursors and selections as editor decorations: caret, name label, tinted selection, overview-ruler mark. */
import * as vscode from "vscode";
import { byColor, cursorDecorations, type CursorDecoration } from "../core/cursors";
import { withAlpha } from "../core/colors";
import type { RemoteCursorsParams } from "../core/protocol";

interface Types { caret: vscode.TextEditorDecorationType; selection: vscode.TextEditorDecorationType }

export class CursorDecorations implements vscode.Disposable {
  private readonly byUri = new Map<string, RemoteCursorsParams>();
  private readonly types = new Map<string, Types>();
  /** What was drawn last, per uri (the e2e oracle reads it). */
  readonly drawn = new Map<string, CursorDecoration[]>();

  constructor(private readonly onDraw: () => void) {}

  update(params: RemoteCursorsParams): void {
    this.byUri.set(normalize(params.uri), params);
    this.redraw();
  }

  clear(): void {
    this.byUri.clear();
    this.redraw();
  }

  private typesFor(color: string): Types {
    let types = this.types.get(color);
    if (!types) {
      types = {
        caret: vscode.window.createTextEditorDecorationType({
          rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
          overviewRulerColor: color,
          overviewRulerLane: vscode.OverviewRulerLane.Full,
          before: {
            contentText: "",
            border: `1px solid ${color}`,
            margin: "0 -1px 0 0",
            height: "1.1em",
            width: "0",
          },
          after: {
            backgroundColor: color,
            color: "#ffffff",
            margin: "0 0 0 2px",
            fontWeight: "normal",
            textDecoration: "none; font-size: 0.8em; padding: 0 3px; border-radius: 2px; vertical-align: top; position: relative; z-index: 1",
          },
        }),
        selection: vscode.window.createTextEditorDecorationType({
          backgroundColor: withAlpha(color, 0.25),
          overviewRulerColor: withAlpha(color, 0.6),
          overviewRulerLane: vscode.OverviewRulerLane.Center,
          rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
        }),
      };
      this.types.set(color, types);
    }
    return types;
  }

  /** Draw on every visible editor; colours that are no longer used are cleared. */
  redraw(): void {
    this.drawn.clear();
    for (const editor of vscode.window.visibleTextEditors) {
      const key = normalize(editor.document.uri.toString());
      const params = this.byUri.get(key);
      const doc = editor.document;
      const decorations = params
        ? cursorDecorations(params.cursors, { lineCount: doc.lineCount, lineLength: (l) => doc.lineAt(l).text.length })
        : [];
      this.drawn.set(key, decorations);
      const groups = byColor(decorations);
      for (const color of groups.keys()) this.typesFor(color);
      for (const [color, types] of this.types) {
        const group = groups.get(color) ?? [];
        editor.setDecorations(
          types.caret,
          group.map((d) => ({
            range: toRange(d.caret),
            hoverMessage: `${d.name}'s cursor`,
            renderOptions: { after: { contentText: d.name } },
          })),
        );
        editor.setDecorations(
          types.selection,
          group.flatMap((d) => (d.selection ? [{ range: toRange(d.selection), hoverMessage: `${d.name}'s selection` }] : [])),
        );
      }
    }
    this.onDraw();
  }

  dispose(): void {
    for (const t of this.types.values()) {
      t.caret.dispose();
      t.selection.dispose();
    }
    this.types.clear();
  }
}

function toRange(r: { start: { line: number; character: number }; end: { line: number; character: number } }): vscode.Range {
  return new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character);
}

/** URIs from the sidecar and from VS Code may encode differently; compare parsed forms. */
export function normalize(uri: string): string {
  return vscode.Uri.parse(uri).toString();
}
