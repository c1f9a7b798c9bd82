/**
 * Follow mode (§6.4): reveal the followed person's viewport when it changes; stop when the
 * user moves on their own. The editor is reached through a port, so this is testable.
 */
import type { FollowParams } from "./protocol";

export interface FollowPort {
  /** Open `uri` and reveal lines start..end (0-based); resolves when done. */
  reveal(uri: string, startLine: number, endLine: number, cursorLine: number): Promise<void>;
  unfollow(): Promise<void>;
}

export class FollowController {
  private last: string | undefined;
  private revealing = 0;
  following: string | null = null;

  constructor(private readonly port: FollowPort, private readonly now: () => number = Date.now) {}

  setFollowing(userId: string | null): void {
    if (userId !== this.following) this.last = undefined;
    this.following = userId;
  }

  /** A collab/follow notification: reveal if the place changed. Returns true when it revealed. */
  async onFollow(params: FollowParams): Promise<boolean> {
    if (!this.following || params.userId !== this.following || !params.uri) return false;
    const key = `${params.uri}#${params.range.start.line}-${params.range.end.line}#${params.line}`;
    if (key === this.last) return false;
    this.last = key;
    this.revealing = this.now();
    try {
      await this.port.reveal(params.uri, params.range.start.line, params.range.end.line, Math.max(0, params.line - 1));
    } finally {
      this.revealing = this.now();
    }
    return true;
  }

  /**
   * The user changed the selection or the active editor. `userInitiated` is true for keyboard and
   * mouse changes (VS Code's selection change kind), false for programmatic ones. Changes that
   * happen right after our own reveal are ours.
   */
  async onUserNavigation(userInitiated: boolean): Promise<boolean> {
    if (!this.following || !userInitiated) return false;
    if (this.now() - this.revealing < 300) return false;
    this.following = null;
    this.last = undefined;
    await this.port.unfollow();
    return true;
  }
}
