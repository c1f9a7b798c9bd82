/** The chat list (§6.5): history replaces, new appends, edited/deleted/reactions replace by id, pages prepend. */
import type { ChatParams, Message } from "./protocol";

export class ChatModel {
  private messages: Message[] = [];
  hasMore = true;

  list(): readonly Message[] {
    return this.messages;
  }

  /** The smallest seq held: pass it as fetchHistory's beforeSeq. */
  oldestSeq(): number | undefined {
    return this.messages.length ? Math.min(...this.messages.map((m) => m.seq)) : undefined;
  }

  /** Apply a collab/chat notification; returns true when the list changed. */
  apply(params: ChatParams): boolean {
    switch (params.kind) {
      case "history":
        this.messages = params.messages.filter(isChat).sort((a, b) => a.seq - b.seq);
        this.hasMore = true;
        return true;
      case "new":
        if (!isChat(params.message) || this.messages.some((m) => m.id === params.message.id)) return false;
        this.messages.push(params.message);
        this.messages.sort((a, b) => a.seq - b.seq);
        return true;
      case "edited":
      case "deleted":
      case "reactions": {
        const index = this.messages.findIndex((m) => m.id === params.message.id);
        if (index < 0) return false;
        this.messages[index] = { ...this.messages[index], ...params.message };
        return true;
      }
      default:
        return false;
    }
  }

  /** Add an older page from fetchHistory (mixed chat and comments, oldest first). */
  prepend(page: Message[], hasMore: boolean): Message[] {
    const known = new Set(this.messages.map((m) => m.id));
    const added = page.filter((m) => isChat(m) && !known.has(m.id));
    this.messages = [...added, ...this.messages].sort((a, b) => a.seq - b.seq);
    this.hasMore = hasMore;
    return added;
  }

  clear(): void {
    this.messages = [];
    this.hasMore = true;
  }
}

export function isChat(message: Message): boolean {
  return message.message_type === "chat";
}
