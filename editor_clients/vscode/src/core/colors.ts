/** One stable colour per person: the sidecar's colorIndex (sha256 of the user id, §10) mapped on a palette. */
import { createHash } from "node:crypto";

export const PALETTE: readonly string[] = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
  "#f032e6", "#9a6324", "#469990", "#808000", "#000075", "#bfef45",
];

/** The colour index of a user id, exactly as the relay and sidecar compute it. */
export function colorIndexFor(userId: string): number {
  const digest = createHash("sha256").update(userId, "utf8").digest();
  return digest.readUInt32BE(0) % PALETTE.length;
}

/** The palette colour for an index (any integer, wrapped), or for a user id when the index is missing. */
export function colorFor(colorIndex: number | null | undefined, userId?: string): string {
  let index = colorIndex;
  if (index === null || index === undefined || !Number.isInteger(index)) {
    index = userId === undefined ? 0 : colorIndexFor(userId);
  }
  const n = PALETTE.length;
  return PALETTE[((index % n) + n) % n];
}

/** `#rrggbb` with an alpha channel, for selection tints. */
export function withAlpha(color: string, alpha: number): string {
  const byte = Math.max(0, Math.min(255, Math.round(alpha * 255)));
  return `${color.slice(0, 7)}${byte.toString(16).padStart(2, "0")}`;
}
