/** Types of the sidecar's editor protocol (docs/editor-protocol.md). Positions are LSP, utf-16. */

export interface Position { line: number; character: number }
export interface Range { start: Position; end: Position }

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";
export type Role = "host" | "editor" | "viewer";

/** collab/sessionState (§6.1): always the whole state. */
export interface SessionState {
  state: ConnectionState;
  detail: string | null;
  sessionId: string | null;
  title: string | null;
  status: "active" | "paused" | "ended" | null;
  role: Role | null;
  you: string | null;
  tokenCount: number | null;
  healthScore: number | null;
  participantCount: number;
  pendingCount: number;
  following: string | null;
  personalToken?: string | null;
}

/** collab/participants (§6.2). `line` is 1-based, display-only. */
export interface Participant {
  userId: string;
  name: string;
  role: Role;
  kind: "human" | "agent";
  status: "active" | "idle" | "away";
  online: boolean;
  colorIndex: number;
  color: string;
  file: string | null;
  line: number | null;
  following: string | null;
  isYou: boolean;
}

export interface RemoteCursor {
  userId: string;
  name: string;
  kind: "human" | "agent";
  colorIndex: number;
  color: string;
  position: Position;
  selection?: { anchor: Position; active: Position } | null;
}

/** collab/remoteCursors (§6.3): replaces every cursor drawn in `uri`. */
export interface RemoteCursorsParams { uri: string; file: string; cursors: RemoteCursor[] }

/** collab/follow (§6.4). `line` is 1-based; `range` is LSP lines of the viewport. */
export interface FollowParams {
  userId: string;
  name: string;
  file: string;
  uri: string | null;
  line: number;
  range: Range;
}

/** A relay message, snake_case as the relay sends it (§6.5). Missing and null are alike. */
export interface Message {
  id: string;
  seq: number;
  message_type: "chat" | "comment";
  user_id: string;
  username: string;
  content: string;
  mentions?: string[] | null;
  reactions?: Record<string, string[]> | null;
  parent_id?: string | null;
  file?: string | null;
  line?: number | null;
  end_line?: number | null;
  code_snippet?: string | null;
  resolved?: boolean | null;
  timestamp: string;
  edited_at?: string | null;
  deleted?: boolean | null;
}

export interface Mention {
  type: "mention";
  message_id: string;
  by: string;
  by_username: string;
  content: string;
}

export type ChatParams =
  | { kind: "history"; messages: Message[] }
  | { kind: "new" | "edited" | "deleted" | "reactions"; message: Message }
  | { kind: "mention"; mention: Mention }
  | { kind: "focus"; threadId: string };

/** collab.server.listThreads (§7.13). */
export interface ThreadInfo {
  threadId: string;
  file: string;
  uri: string | null;
  line: number | null;
  currentLine: number | null;
  outdated: boolean;
  resolved: boolean;
  comments: Message[];
}

export type DurableResult =
  | { status: "acknowledged"; id: string; seq: number }
  | { status: "pending"; state: string };

export const OFFLINE_STATE: SessionState = {
  state: "offline", detail: null, sessionId: null, title: null, status: null, role: null, you: null,
  tokenCount: null, healthScore: null, participantCount: 0, pendingCount: 0, following: null,
};
