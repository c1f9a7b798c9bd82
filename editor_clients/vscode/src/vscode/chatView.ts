/** The Chat view: a webview with a strict Content-Security-Policy; all message HTML is built escaped. */
import * as vscode from "vscode";
import * as crypto from "node:crypto";
import { ChatModel } from "../core/chatModel";
import { renderMessage } from "../core/chatRender";
import type { ChatParams, Message } from "../core/protocol";

export interface ChatBackend {
  you(): string | null;
  /** Everyone's display names, and yours (the @mention list leaves you out). */
  names(): string[];
  yourName(): string | null;
  send(text: string): Promise<void>;
  fetchOlder(beforeSeq: number | undefined): Promise<{ messages: Message[]; hasMore: boolean }>;
  react(id: string, emoji: string, add: boolean): Promise<void>;
  edit(message: Message): Promise<void>;
  remove(message: Message): Promise<void>;
  openFile(file: string, line: number): Promise<void>;
}

export interface ChatDom { text: string; injected: number; count: number }

export class ChatView implements vscode.WebviewViewProvider {
  static readonly viewId = "collab.chat";
  readonly model = new ChatModel();
  private view: vscode.WebviewView | undefined;
  /** What the webview reports it shows (the e2e oracle reads it). */
  dom: ChatDom | undefined;

  constructor(private readonly extensionUri: vscode.Uri, private readonly backend: ChatBackend, private readonly onChange: () => void) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, "media");
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = this.html(view.webview, media);
    view.webview.onDidReceiveMessage((m) => void this.onMessage(m));
    view.onDidDispose(() => (this.view = undefined));
  }

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    const nonce = crypto.randomBytes(16).toString("base64");
    const script = webview.asWebviewUri(vscode.Uri.joinPath(media, "chat.js"));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(media, "chat.css"));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
      `font-src ${webview.cspSource}`,
      "img-src 'none'",
      "connect-src 'none'",
      "frame-src 'none'",
      "form-action 'none'",
      "base-uri 'none'",
    ].join("; ");
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${style}"></head>
<body>
<div id="older" hidden><button id="load-older">Load older messages</button></div>
<div id="messages" role="log" aria-live="polite"></div>
<div id="suggestions" hidden></div>
<form id="composer"><textarea id="input" rows="2" placeholder="Message everyone (Enter to send, @ to mention)"></textarea></form>
<script nonce="${nonce}" src="${script}"></script>
</body></html>`;
  }

  show(): void {
    void vscode.commands.executeCommand(`${ChatView.viewId}.focus`);
  }

  /** A collab/chat notification. */
  apply(params: ChatParams): void {
    if (params.kind === "mention") {
      const m = params.mention;
      void vscode.window.showInformationMessage(`Collab: ${m.by_username} mentioned you: ${m.content.slice(0, 200)}`, "Open Chat").then((c) => {
        if (c) this.show();
      });
      return;
    }
    if (params.kind === "focus") {
      void vscode.commands.executeCommand("workbench.action.focusCommentsPanel");
      return;
    }
    if (this.model.apply(params)) this.render();
  }

  clear(): void {
    this.model.clear();
    this.render();
  }

  participantsChanged(): void {
    void this.view?.webview.postMessage({ type: "participants", names: this.backend.names(), you: this.backend.yourName() });
  }

  render(): void {
    const you = this.backend.you();
    const html = this.model.list().map((m) => renderMessage(m, you));
    void this.view?.webview.postMessage({ type: "reset", html, hasMore: this.model.hasMore && this.model.list().length > 0 });
  }

  private find(id: unknown): Message | undefined {
    return this.model.list().find((m) => m.id === id);
  }

  private async onMessage(m: { type: string; [key: string]: unknown }): Promise<void> {
    switch (m.type) {
      case "ready":
        this.participantsChanged();
        this.render();
        break;
      case "send":
        if (typeof m.text === "string" && m.text.trim()) await this.backend.send(m.text);
        break;
      case "loadOlder": {
        const page = await this.backend.fetchOlder(this.model.oldestSeq());
        this.model.prepend(page.messages, page.hasMore);
        this.render();
        break;
      }
      case "react":
      case "unreact":
        if (typeof m.id === "string" && typeof m.emoji === "string") await this.backend.react(m.id, m.emoji, m.type === "react");
        break;
      case "pick-reaction": {
        const emoji = await vscode.window.showQuickPick(["👍", "👀", "🎉", "❤️", "😄", "🚀", "✅", "❓"], { placeHolder: "React with" });
        if (emoji && typeof m.id === "string") await this.backend.react(m.id, emoji, true);
        break;
      }
      case "edit": {
        const message = this.find(m.id);
        if (message) await this.backend.edit(message);
        break;
      }
      case "delete": {
        const message = this.find(m.id);
        if (message) await this.backend.remove(message);
        break;
      }
      case "openFile":
        if (typeof m.file === "string" && typeof m.line === "number") await this.backend.openFile(m.file, m.line);
        break;
      case "rendered":
        this.dom = { text: String(m.text ?? ""), injected: Number(m.injected ?? 0), count: Number(m.count ?? 0) };
        this.onChange();
        break;
    }
  }
}
