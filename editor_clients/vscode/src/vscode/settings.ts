/** The collab.* settings, and the token in SecretStorage (never in settings files). */
import * as vscode from "vscode";
import * as os from "node:os";

export interface Settings { relayUrl: string; displayName: string; sidecarPath: string; logLevel: string; sessionId: string }

export function getSettings(): Settings {
  const c = vscode.workspace.getConfiguration("collab");
  return {
    relayUrl: c.get<string>("relayUrl", "").trim(),
    displayName: c.get<string>("displayName", "").trim() || safeUserName(),
    sidecarPath: c.get<string>("sidecarPath", "").trim(),
    logLevel: c.get<string>("logLevel", "INFO"),
    sessionId: c.get<string>("sessionId", "").trim(),
  };
}

function safeUserName(): string {
  try {
    return os.userInfo().username.slice(0, 64) || "vscode";
  } catch {
    return "vscode";
  }
}

const TOKEN_KEY = "collab.token";

export class TokenStore {
  constructor(private readonly secrets: vscode.SecretStorage) {}

  private key(relayUrl: string): string {
    return `${TOKEN_KEY}:${relayUrl}`;
  }

  async get(relayUrl: string): Promise<string | undefined> {
    if (!relayUrl) return undefined;
    try {
      return await this.secrets.get(this.key(relayUrl));
    } catch {
      return undefined;
    }
  }

  async set(relayUrl: string, token: string): Promise<void> {
    try {
      await this.secrets.store(this.key(relayUrl), token);
    } catch {
      /* SecretStorage unavailable: the token is used for this window only */
    }
  }

  async delete(relayUrl: string): Promise<void> {
    try {
      await this.secrets.delete(this.key(relayUrl));
    } catch {
      /* ignore */
    }
  }
}
