/** Comment threads (listThreads, §7.13) as what a native comment thread shows. */
import type { Message, ThreadInfo } from "./protocol";

export interface CommentView {
  id: string;
  author: string;
  body: string;
  timestamp: Date | undefined;
  own: boolean;
  edited: boolean;
}

export interface ThreadView {
  threadId: string;
  uri: string;
  /** 0-based lines of the anchor in the local document. */
  startLine: number;
  endLine: number;
  resolved: boolean;
  outdated: boolean;
  label: string;
  comments: CommentView[];
}

export function commentView(message: Message, you: string | null): CommentView {
  const when = new Date(message.timestamp);
  return {
    id: message.id,
    author: message.username,
    body: message.content,
    timestamp: Number.isNaN(when.getTime()) ? undefined : when,
    own: you !== null && message.user_id === you,
    edited: Boolean(message.edited_at),
  };
}

/** A thread's anchor: currentLine when the file is open, else the stored 1-based line. */
export function threadView(thread: ThreadInfo, you: string | null): ThreadView | undefined {
  // A thread whose first comment was deleted is gone (listThreads still lists its tombstone, §7.16).
  if (!thread.uri || thread.comments.length === 0 || thread.comments[0].deleted) return undefined;
  const first = thread.comments[0];
  const stored = thread.line !== null ? thread.line - 1 : 0;
  const startLine = Math.max(0, thread.currentLine ?? stored);
  const span = first.end_line && first.line ? Math.max(0, first.end_line - first.line) : 0;
  const replies = thread.comments.length - 1;
  const label =
    `${first.username}${thread.outdated ? " · outdated" : ""}${thread.resolved ? " · resolved" : ""}` +
    (replies ? ` · ${replies} ${replies === 1 ? "reply" : "replies"}` : "");
  return {
    threadId: thread.threadId,
    uri: thread.uri,
    startLine,
    endLine: startLine + span,
    resolved: thread.resolved,
    outdated: thread.outdated,
    label,
    comments: thread.comments.filter((c) => !c.deleted).map((c) => commentView(c, you)),
  };
}

/** A key that changes whenever anything shown of the thread changes (to skip needless redraws). */
export function threadKey(view: ThreadView): string {
  return JSON.stringify(view);
}

/** Is this diagnostic code a real thread id (not a pending comment's temporary id, §8.1)? */
export function isThreadId(code: unknown): code is string {
  return typeof code === "string" && code.startsWith("m_");
}

/** The addComment range for a selection: whole lines, end exclusive as LSP wants (§4.4). */
export function commentRange(start: { line: number; character: number }, end: { line: number; character: number }) {
  if (start.line === end.line && start.character === end.character) return { line: start.line };
  return { range: { start, end } };
}
