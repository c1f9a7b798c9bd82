/** Comment threads as native VS Code comment threads (Comments API), fed from collab.server.listThreads. */
import * as vscode from "vscode";
import { threadKey, threadView, type CommentView, type ThreadView } from "../core/threads";
import type { ThreadInfo } from "../core/protocol";

export class CollabComment implements vscode.Comment {
  mode = vscode.CommentMode.Preview;
  body: string | vscode.MarkdownString;
  author: vscode.CommentAuthorInformation;
  timestamp?: Date;
  contextValue: string;
  label?: string;
  savedBody: string;

  constructor(readonly view: CommentView, readonly thread: vscode.CommentThread) {
    this.body = view.body;
    this.savedBody = view.body;
    this.author = { name: view.author };
    this.timestamp = view.timestamp;
    this.contextValue = view.own ? "own" : "other";
    this.label = view.edited ? "(edited)" : undefined;
  }
}

export interface CommentsBackend {
  listThreads(): Promise<ThreadInfo[]>;
  you(): string | null;
  canComment(): boolean;
}

export class CommentThreads implements vscode.Disposable {
  readonly controller: vscode.CommentController;
  private readonly threads = new Map<string, { thread: vscode.CommentThread; key: string }>();
  private readonly ids = new WeakMap<vscode.CommentThread, string>();
  private loadedOnce = false;
  /** What is shown (the e2e oracle reads it). */
  views: ThreadView[] = [];

  constructor(private readonly backend: CommentsBackend, private readonly onChange: () => void) {
    this.controller = vscode.comments.createCommentController("collab", "Collab");
    this.controller.options = { prompt: "Comment for everyone in the session", placeHolder: "Write a comment (@name mentions)" };
    this.controller.commentingRangeProvider = {
      provideCommentingRanges: (document) =>
        document.uri.scheme === "file" && vscode.workspace.getWorkspaceFolder(document.uri) && this.backend.canComment()
          ? [new vscode.Range(0, 0, Math.max(0, document.lineCount - 1), 0)]
          : [],
    };
  }

  threadId(thread: vscode.CommentThread): string | undefined {
    return this.ids.get(thread);
  }

  /** Re-read every thread from the sidecar and update what changed. */
  async refresh(): Promise<void> {
    let infos: ThreadInfo[];
    try {
      infos = await this.backend.listThreads();
    } catch {
      return;
    }
    const you = this.backend.you();
    const views = infos.flatMap((t) => threadView(t, you) ?? []);
    const seen = new Set<string>();
    for (const view of views) {
      seen.add(view.threadId);
      const key = threadKey(view);
      const existing = this.threads.get(view.threadId);
      if (existing && existing.key === key) continue;
      const range = new vscode.Range(view.startLine, 0, view.endLine, 0);
      let thread = existing?.thread;
      if (!thread) {
        thread = this.controller.createCommentThread(vscode.Uri.parse(view.uri), range, []);
        this.ids.set(thread, view.threadId);
        // Threads that arrive during the session open inline; those loaded at join stay folded.
        thread.collapsibleState =
          this.loadedOnce && !view.resolved ? vscode.CommentThreadCollapsibleState.Expanded : vscode.CommentThreadCollapsibleState.Collapsed;
      } else {
        thread.range = range;
      }
      thread.label = view.label;
      thread.contextValue = view.resolved ? "resolved" : "open";
      thread.state = view.resolved ? vscode.CommentThreadState.Resolved : vscode.CommentThreadState.Unresolved;
      thread.canReply = this.backend.canComment() && !view.resolved;
      const t = thread;
      thread.comments = view.comments.map((c) => new CollabComment(c, t));
      this.threads.set(view.threadId, { thread, key });
    }
    for (const [id, entry] of this.threads) {
      if (!seen.has(id)) {
        entry.thread.dispose();
        this.threads.delete(id);
      }
    }
    this.views = views;
    this.loadedOnce = true;
    this.onChange();
  }

  clear(): void {
    for (const entry of this.threads.values()) entry.thread.dispose();
    this.threads.clear();
    this.views = [];
    this.loadedOnce = false;
    this.onChange();
  }

  dispose(): void {
    this.clear();
    this.controller.dispose();
  }
}
