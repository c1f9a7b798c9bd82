/** Invite links (§3.3): collab://join?relay=…&token=…, or vscode://publisher.name/join?relay=…&token=…. */

export interface Invite { relayUrl: string; token: string }

export class InviteError extends Error {}

const SCHEMES = new Set(["collab:", "vscode:", "vscode-insiders:", "code-oss:"]);

/** Parse an invite link; throws InviteError with a message for people. */
export function parseInvite(link: string): Invite {
  const text = link.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InviteError("not an invite link: expected collab://join?relay=…&token=…");
  }
  if (!SCHEMES.has(url.protocol)) {
    throw new InviteError(`not an invite link: unexpected scheme ${url.protocol}`);
  }
  const relay = url.searchParams.get("relay");
  const token = url.searchParams.get("token");
  if (!relay) throw new InviteError("the invite link has no relay");
  if (!token) throw new InviteError("the invite link has no token");
  if (!/^(wss?|https?):\/\//.test(relay)) {
    throw new InviteError(`the invite's relay must be ws://, wss://, http:// or https://, not ${relay}`);
  }
  return { relayUrl: relay, token };
}

/** True when the text looks like an invite link rather than a relay URL. */
export function isInviteLink(text: string): boolean {
  return /^(collab|vscode|vscode-insiders|code-oss):/.test(text.trim()) && text.includes("token=");
}

/**
 * The invite as the sidecar reads it: collab://join?relay=…&token=…. The sidecar knows the
 * vscode:// and vscode-insiders:// forms only; VS Code builds such as code-oss, code-server
 * and VSCodium hand the URI handler their own scheme.
 */
export function collabInviteLink(invite: Invite): string {
  return `collab://join?relay=${encodeURIComponent(invite.relayUrl)}&token=${encodeURIComponent(invite.token)}`;
}

/** A one-click link for VS Code users: vscode://<extensionId>/join?relay=…&token=…. */
export function vscodeInviteLink(extensionId: string, invite: Invite, scheme = "vscode"): string {
  const query = `relay=${encodeURIComponent(invite.relayUrl)}&token=${encodeURIComponent(invite.token)}`;
  return `${scheme}://${extensionId}/join?${query}`;
}

/** Validate a relay URL typed by a person; returns an error message or undefined. */
export function relayUrlError(value: string): string | undefined {
  if (!value.trim()) return "enter the relay URL, e.g. wss://relay.example.com";
  if (!/^(wss?|https?):\/\/[^\s/]+/.test(value.trim())) return "the relay URL must look like ws://host:port or wss://host";
  return undefined;
}
