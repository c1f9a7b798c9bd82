/** Status bar text from collab/sessionState (§6.1, §11.1 item 11). */
import type { Participant, SessionState } from "./protocol";

export interface StatusView { text: string; tooltip: string; warning: boolean }

export function statusView(state: SessionState, participants: Participant[] = []): StatusView {
  const followed = state.following ? participants.find((p) => p.userId === state.following)?.name ?? state.following : null;
  const icon = { connected: "$(live-share)", connecting: "$(sync~spin)", reconnecting: "$(sync~spin)", offline: "$(circle-slash)" }[state.state];
  if (state.state === "offline") {
    return {
      text: `${icon} Collab: offline`,
      tooltip: state.detail ? `Offline: ${state.detail}` : "Not in a session. Run “Collab: Join Session”.",
      warning: Boolean(state.detail && state.detail !== "not configured"),
    };
  }
  const parts = [`${icon} ${state.title ?? "Collab"}`];
  if (state.state !== "connected") parts.push(state.state);
  parts.push(`$(person) ${state.participantCount}`);
  if (state.tokenCount !== null) parts.push(`$(symbol-number) ${formatCount(state.tokenCount)}`);
  if (state.healthScore !== null) parts.push(`$(heart) ${Math.round(state.healthScore)}`);
  if (state.pendingCount > 0) parts.push(`$(clock) ${state.pendingCount} pending`);
  if (followed) parts.push(`$(eye) following ${followed}`);
  const tooltip = [
    `Session: ${state.title ?? state.sessionId ?? "?"} (${state.state})`,
    state.role ? `Your role: ${state.role}` : "",
    `Participants online: ${state.participantCount}`,
    state.tokenCount !== null ? `Tokens: ${state.tokenCount}` : "",
    state.healthScore !== null ? `Health score: ${state.healthScore}` : "",
    state.detail ? `Detail: ${state.detail}` : "",
  ].filter(Boolean).join("\n");
  return { text: parts.join("  "), tooltip, warning: state.state === "reconnecting" };
}

export function formatCount(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k`;
  return String(n);
}
