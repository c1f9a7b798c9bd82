/** The session as the editor sees it: state from the sidecar's notifications, fanned out to the views. */
import * as vscode from "vscode";
import type { Middleware } from "vscode-languageclient/node";
import { OFFLINE_STATE, type ChatParams, type FollowParams, type Message, type Participant, type RemoteCursorsParams, type SessionState, type ThreadInfo } from "../core/protocol";
import { errorMessage, pendingMessage } from "../core/errors";
import { FollowController } from "../core/follow";
import { debounce, FocusPresence } from "../core/debounce";
import { statusView } from "../core/statusText";
import { Sidecar } from "./sidecar";
import { getSettings, TokenStore } from "./settings";
import { CursorDecorations, normalize } from "./cursorDecorations";
import { CommentThreads } from "./comments";
import { ParticipantsView } from "./participantsView";
import { ChatView } from "./chatView";
import { Oracle } from "./oracle";

export class Session implements vscode.Disposable {
  state: SessionState = OFFLINE_STATE;
  participants: Participant[] = [];
  readonly sidecar: Sidecar;
  readonly cursors: CursorDecorations;
  readonly comments: CommentThreads;
  readonly participantsView = new ParticipantsView();
  readonly chat: ChatView;
  readonly follow: FollowController;
  readonly tokens: TokenStore;
  private readonly status = vscode.window.createStatusBarItem("collab.status", vscode.StatusBarAlignment.Left, 100);
  private readonly presence: FocusPresence;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly oracle: Oracle;
  private readonly refreshComments = debounce(() => void this.comments.refresh(), 150);
  private readonly sendCursor = debounce((editor: vscode.TextEditor) => this.cursorOf(editor), 50);
  private readonly sendViewport = debounce((editor: vscode.TextEditor) => this.viewportOf(editor), 150);

  constructor(readonly context: vscode.ExtensionContext, readonly log: vscode.LogOutputChannel) {
    this.tokens = new TokenStore(context.secrets);
    this.oracle = new Oracle(this);
    const changed = () => this.oracle.write();
    this.cursors = new CursorDecorations(changed);
    this.comments = new CommentThreads(
      {
        listThreads: async () => (await this.sidecar.execute<{ threads: ThreadInfo[] }>("listThreads", { includeResolved: true })).threads,
        you: () => this.state.you,
        canComment: () => this.state.role !== "viewer",
      },
      changed,
    );
    this.chat = new ChatView(context.extensionUri, this.chatBackend(), changed);
    this.follow = new FollowController({
      reveal: async (uri, start, end, cursorLine) => {
        const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(uri));
        const editor = await vscode.window.showTextDocument(document, { preserveFocus: false, preview: false });
        const line = Math.min(cursorLine, document.lineCount - 1);
        editor.selection = new vscode.Selection(line, 0, line, 0);
        editor.revealRange(new vscode.Range(start, 0, Math.max(start, end), 0), vscode.TextEditorRevealType.AtTop);
        changed();
      },
      unfollow: async () => {
        await this.run("stop following", () => this.sidecar.execute("unfollow"));
        void vscode.window.setStatusBarMessage("Collab: stopped following (you moved on your own)", 4000);
      },
    });
    this.sidecar = new Sidecar(log, this.handlers(), this.middleware(), () => this.initOptions());
    this.presence = new FocusPresence((status) => this.sidecar.notify("collab/status", { status }));
    this.status.command = "collab.showParticipants";
    this.status.name = "Collab";
    this.renderStatus();
    this.status.show();
    this.disposables.push(
      this.status,
      this.cursors,
      this.comments,
      vscode.window.registerTreeDataProvider("collab.participants", this.participantsView),
      vscode.window.registerWebviewViewProvider(ChatView.viewId, this.chat, { webviewOptions: { retainContextWhenHidden: true } }),
      vscode.window.onDidChangeTextEditorSelection((e) => {
        this.sendCursor(e.textEditor);
        const user = e.kind === vscode.TextEditorSelectionChangeKind.Keyboard || e.kind === vscode.TextEditorSelectionChangeKind.Mouse;
        void this.follow.onUserNavigation(user);
        changed();
      }),
      vscode.window.onDidChangeTextEditorVisibleRanges((e) => {
        this.sendViewport(e.textEditor);
        changed();
      }),
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        if (editor) {
          this.sendCursor(editor);
          this.sendViewport(editor);
        }
        changed();
      }),
      vscode.window.onDidChangeVisibleTextEditors(() => this.cursors.redraw()),
      vscode.window.onDidChangeWindowState((s) => this.presence.focusChanged(s.focused)),
      vscode.languages.onDidChangeDiagnostics((e) => {
        if (e.uris.length) this.refreshComments();
        changed();
      }),
      this.sidecar.onDidChangeRunning((running) => {
        if (!running) this.setOffline("the sidecar stopped");
      }),
    );
  }

  private async initOptions(): Promise<Record<string, unknown>> {
    const s = getSettings();
    const token = await this.tokens.get(s.relayUrl);
    return { relayUrl: s.relayUrl || null, token: token ?? null, name: s.displayName, sessionId: s.sessionId || null, logLevel: s.logLevel };
  }

  private handlers() {
    return {
      "collab/sessionState": (p: SessionState) => this.onSessionState(p),
      "collab/participants": (p: { participants: Participant[] }) => {
        this.participants = p.participants;
        this.participantsView.update(this.participants, this.state.following);
        this.chat.participantsChanged();
        this.renderStatus();
        this.oracle.write();
      },
      "collab/remoteCursors": (p: RemoteCursorsParams) => this.cursors.update(p),
      "collab/follow": (p: FollowParams) => void this.follow.onFollow(p),
      "collab/chat": (p: ChatParams) => this.chat.apply(p),
    };
  }

  private middleware(): Middleware {
    return {
      executeCommand: async (command, args, next) => {
        const arg = (args[0] ?? {}) as Record<string, unknown>;
        if ((command === "collab.server.reply" || command === "collab.server.editMessage") && !arg.text) {
          const text = await vscode.window.showInputBox({ prompt: command.endsWith("reply") ? "Reply" : "Edit message", ignoreFocusOut: true });
          return text ? next(command, [{ ...arg, text }]) : undefined;
        }
        if (command === "collab.server.listThreads") {
          void vscode.commands.executeCommand("workbench.action.focusCommentsPanel");
          return undefined;
        }
        return next(command, args);
      },
      // Remote cursors are drawn as decorations: hide the sidecar's inlay hints for them (§8.5).
      provideInlayHints: () => [],
    };
  }

  private onSessionState(state: SessionState): void {
    const wasIn = this.state.sessionId;
    this.state = state;
    this.follow.setFollowing(state.following);
    void vscode.commands.executeCommand("setContext", "collab.role", state.role ?? "");
    void vscode.commands.executeCommand("setContext", "collab.following", Boolean(state.following));
    void vscode.commands.executeCommand("setContext", "collab.connected", state.state === "connected");
    if (state.personalToken) {
      const relay = getSettings().relayUrl;
      if (relay) void this.tokens.set(relay, state.personalToken);
    }
    if (state.state === "offline" && !state.sessionId) {
      this.cursors.clear();
      this.comments.clear();
      this.chat.clear();
    }
    if (state.sessionId && state.sessionId !== wasIn) this.refreshComments();
    if (state.state === "connected") {
      const editor = vscode.window.activeTextEditor;
      if (editor) {
        this.sendCursor(editor);
        this.sendViewport(editor);
      }
    }
    this.participantsView.update(this.participants, state.following);
    this.renderStatus();
    this.oracle.write();
  }

  private setOffline(detail: string): void {
    this.state = { ...OFFLINE_STATE, detail };
    this.cursors.clear();
    this.renderStatus();
    this.oracle.write();
  }

  private renderStatus(): void {
    const view = statusView(this.state, this.participants);
    this.status.text = view.text;
    this.status.tooltip = view.tooltip;
    this.status.backgroundColor = view.warning ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  private shared(editor: vscode.TextEditor): boolean {
    return editor.document.uri.scheme === "file" && this.state.state === "connected";
  }

  private cursorOf(editor: vscode.TextEditor): void {
    if (!this.shared(editor)) return;
    const s = editor.selection;
    this.sidecar.notify("collab/cursor", {
      uri: editor.document.uri.toString(),
      position: { line: s.active.line, character: s.active.character },
      selections: editor.selections.map((sel) => ({
        anchor: { line: sel.anchor.line, character: sel.anchor.character },
        active: { line: sel.active.line, character: sel.active.character },
      })),
    });
  }

  private viewportOf(editor: vscode.TextEditor): void {
    if (!this.shared(editor) || !editor.visibleRanges.length) return;
    const first = editor.visibleRanges[0];
    const last = editor.visibleRanges[editor.visibleRanges.length - 1];
    this.sidecar.notify("collab/viewport", {
      uri: editor.document.uri.toString(),
      range: { start: { line: first.start.line, character: 0 }, end: { line: Math.max(first.start.line, last.end.line), character: 0 } },
    });
  }

  /** Run a sidecar command, showing refusals (-32803 with errorCode) and pending results. */
  async run<T>(action: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      const result = await fn();
      const pending = pendingMessage(action, result);
      if (pending) void vscode.window.showInformationMessage(pending);
      return result;
    } catch (error) {
      this.log.warn(`${action}: ${JSON.stringify(error)}`);
      void vscode.window.showErrorMessage(errorMessage(action, error));
      return undefined;
    }
  }

  private chatBackend() {
    return {
      you: () => this.state.you,
      names: () => this.participants.map((p) => p.name),
      yourName: () => this.participants.find((p) => p.isYou)?.name ?? null,
      send: async (text: string) => void (await this.run("send chat", () => this.sidecar.execute("sendChat", { text }))),
      fetchOlder: async (beforeSeq: number | undefined) => {
        const r = await this.run("load older messages", () =>
          this.sidecar.execute<{ messages: Message[]; hasMore: boolean }>("fetchHistory", beforeSeq === undefined ? { limit: 50 } : { beforeSeq, limit: 50 }),
        );
        return r ?? { messages: [], hasMore: false };
      },
      react: async (messageId: string, emoji: string, add: boolean) =>
        void (await this.run(add ? "react" : "remove reaction", () => this.sidecar.execute(add ? "react" : "unreact", { messageId, emoji }))),
      edit: async (message: Message) => {
        const text = await vscode.window.showInputBox({ prompt: "Edit message", value: message.content, ignoreFocusOut: true });
        if (text && text !== message.content) await this.run("edit message", () => this.sidecar.execute("editMessage", { messageId: message.id, text }));
      },
      remove: async (message: Message) => {
        const ok = await vscode.window.showWarningMessage("Delete this message for everyone?", { modal: true }, "Delete");
        if (ok) await this.run("delete message", () => this.sidecar.execute("deleteMessage", { messageId: message.id }));
      },
      openFile: async (file: string, line: number) => {
        const folder = vscode.workspace.workspaceFolders?.[0];
        if (!folder) return;
        const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, file));
        const editor = await vscode.window.showTextDocument(document);
        const l = Math.max(0, Math.min(line - 1, document.lineCount - 1));
        editor.selection = new vscode.Selection(l, 0, l, 0);
        editor.revealRange(new vscode.Range(l, 0, l, 0), vscode.TextEditorRevealType.InCenter);
      },
    };
  }

  /** Diagnostics from the sidecar (source "collab"), for the oracle. */
  collabDiagnostics(): { uri: string; line: number; message: string; code: string }[] {
    return vscode.languages.getDiagnostics().flatMap(([uri, list]) =>
      list
        .filter((d) => d.source === "collab")
        .map((d) => ({ uri: normalize(uri.toString()), line: d.range.start.line, message: d.message, code: String(typeof d.code === "object" ? d.code.value : d.code) })),
    );
  }

  dispose(): void {
    this.presence.dispose();
    for (const d of this.disposables) d.dispose();
    this.sidecar.dispose();
  }
}
