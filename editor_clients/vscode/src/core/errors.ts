/** Turning command results and errors (§7.1, §7.2) into messages for people. */
import type { DurableResult } from "./protocol";

export interface CommandError { code?: number; message?: string; data?: { errorCode?: string; field?: string | null } | null }

const ADVICE: Record<string, string> = {
  PERMISSION_DENIED: "your role does not allow this",
  NOT_JOINED: "join a session first (Collab: Join Session)",
  NOT_CONFIGURED: "set the relay URL and token first (Collab: Join Session)",
  OFFLINE: "the relay is not reachable right now",
  OUTSIDE_WORKSPACE: "only files inside the workspace are shared",
  INVITE_INVALID: "the invite was already used or has expired: ask for a new one",
  TOKEN_EXPIRED: "your token has expired: ask the host for a new invite",
  REMOVED: "you were removed from this session",
  SESSION_ENDED: "the session has ended",
  RATE_LIMITED: "too many actions: wait a minute",
};

export function errorMessage(action: string, error: unknown): string {
  const e = (error ?? {}) as CommandError;
  const code = e.data?.errorCode;
  const message = e.message || String(error);
  const advice = code ? ADVICE[code] : undefined;
  return `Collab: ${action} failed: ${message}${code ? ` (${code})` : ""}${advice && !message.includes(advice) ? ` — ${advice}` : ""}`;
}

/** An informational message for a pending durable result, or undefined when acknowledged. */
export function pendingMessage(action: string, result: unknown): string | undefined {
  const r = result as DurableResult | undefined;
  if (r && r.status === "pending") {
    return `Collab: ${action} will be sent when the relay is back (${r.state}).`;
  }
  return undefined;
}
