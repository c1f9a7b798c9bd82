/** What the Participants view shows for each person. */
import type { Participant } from "./protocol";

export interface ParticipantRow {
  userId: string;
  label: string;
  description: string;
  tooltip: string;
  contextValue: string;
  color: string;
  online: boolean;
}

const ROLE_ORDER = { host: 0, editor: 1, viewer: 2 } as const;

/** Rows sorted: you first, then online before offline, hosts first, then by name. */
export function participantRows(participants: Participant[], following: string | null): ParticipantRow[] {
  const names = new Map(participants.map((p) => [p.userId, p.name]));
  return [...participants]
    .sort(
      (a, b) =>
        Number(b.isYou) - Number(a.isYou) ||
        Number(b.online) - Number(a.online) ||
        ROLE_ORDER[a.role] - ROLE_ORDER[b.role] ||
        a.name.localeCompare(b.name),
    )
    .map((p) => {
      const where = p.file ? `${p.file}${p.line ? `:${p.line}` : ""}` : "";
      const follows = p.following ? `follows ${names.get(p.following) ?? p.following}` : "";
      const status = p.online ? p.status : "offline";
      const parts = [p.role, status, where, follows].filter(Boolean);
      const tags = ["participant", p.isYou ? "you" : "other", `role-${p.role}`];
      if (following === p.userId) tags.push("followed");
      return {
        userId: p.userId,
        // Agents are marked so nobody mistakes an assistant for a person.
        label: `${p.kind === "agent" ? "🤖 " : ""}${p.name}${p.isYou ? " (you)" : ""}${following === p.userId ? " 👁" : ""}`,
        description: parts.join(" · "),
        tooltip: `${p.name} (${p.kind}) — ${parts.join(", ")}`,
        contextValue: tags.join(" "),
        color: p.color,
        online: p.online,
      };
    });
}
