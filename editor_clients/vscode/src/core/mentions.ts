/** @mention completion: the word being typed, and the participants that match it. */

export interface MentionQuery { start: number; prefix: string }

/** The `@prefix` that ends at `caret` in `text`, if any. */
export function mentionAt(text: string, caret: number): MentionQuery | undefined {
  const before = text.slice(0, caret);
  const match = /(^|[^\w@])@([\w.-]*)$/.exec(before);
  if (!match) return undefined;
  return { start: caret - match[2].length - 1, prefix: match[2] };
}

/** Names that start with the prefix (case-insensitive), then names that contain it; you excluded. */
export function mentionCandidates(names: string[], prefix: string, you?: string): string[] {
  const p = prefix.toLowerCase();
  const unique = [...new Set(names)].filter((n) => n !== you);
  const starts = unique.filter((n) => n.toLowerCase().startsWith(p)).sort();
  const contains = unique.filter((n) => !n.toLowerCase().startsWith(p) && n.toLowerCase().includes(p)).sort();
  return [...starts, ...contains];
}

/** Replace the `@prefix` with `@name ` and give the new caret. */
export function completeMention(text: string, query: MentionQuery, caret: number, name: string): { text: string; caret: number } {
  const inserted = `@${name} `;
  return { text: text.slice(0, query.start) + inserted + text.slice(caret), caret: query.start + inserted.length };
}
