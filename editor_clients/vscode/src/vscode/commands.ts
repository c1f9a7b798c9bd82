/** The collab.* commands: each asks what it needs, then runs one collab.server.* command. */
import * as vscode from "vscode";
import { collabInviteLink, isInviteLink, parseInvite, relayUrlError, vscodeInviteLink } from "../core/inviteLink";
import { commentRange } from "../core/threads";
import type { Role, SessionState } from "../core/protocol";
import type { Session } from "./session";
import { getSettings } from "./settings";
import { CollabComment } from "./comments";
import { ParticipantItem } from "./participantsView";

export const EXTENSION_ID = "collab-lsp.collab-lsp";

export interface JoinArgs { relayUrl?: string; token?: string; invite?: string; name?: string }

async function saveRelay(relayUrl: string): Promise<void> {
  const target = vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  if (getSettings().relayUrl !== relayUrl) await vscode.workspace.getConfiguration("collab").update("relayUrl", relayUrl, target);
}

export async function join(session: Session, args?: JoinArgs): Promise<SessionState | undefined> {
  const settings = getSettings();
  let invite = args?.invite;
  let relayUrl = args?.relayUrl;
  let token = args?.token;
  if (!invite && !token) {
    const first = await vscode.window.showInputBox({
      title: "Collab: Join Session (1/2)",
      prompt: "Relay URL, or paste an invite link",
      value: relayUrl ?? settings.relayUrl,
      ignoreFocusOut: true,
      validateInput: (v) => (isInviteLink(v) ? undefined : relayUrlError(v)),
    });
    if (!first) return undefined;
    if (isInviteLink(first)) {
      invite = first.trim();
    } else {
      relayUrl = first.trim();
      token = await vscode.window.showInputBox({
        title: "Collab: Join Session (2/2)",
        prompt: "Token (kept in VS Code's secret storage, never in settings)",
        password: true,
        value: (await session.tokens.get(relayUrl)) ?? "",
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() ? undefined : "paste the token you were given"),
      });
      if (!token) return undefined;
      token = token.trim();
    }
  }
  if (invite) {
    try {
      const parsed = parseInvite(invite);
      relayUrl = parsed.relayUrl;
      invite = collabInviteLink(parsed);
    } catch (error) {
      void vscode.window.showErrorMessage(`Collab: ${(error as Error).message}`);
      return undefined;
    }
  }
  if (!session.sidecar.running && !(await session.sidecar.start())) return undefined;
  const name = args?.name ?? settings.displayName;
  const result = await session.run("join", () =>
    session.sidecar.execute<SessionState>("join", invite ? { invite, name } : { relayUrl, token, name }),
  );
  if (result && relayUrl) {
    await saveRelay(relayUrl);
    const kept = result.personalToken ?? token;
    if (kept) await session.tokens.set(relayUrl, kept);
    void vscode.window.setStatusBarMessage(`Collab: joined ${result.title ?? result.sessionId}`, 4000);
  }
  return result;
}

async function pickParticipant(session: Session, placeHolder: string, item?: unknown): Promise<string | undefined> {
  if (item instanceof ParticipantItem) return item.row.userId;
  if (typeof item === "string") return item;
  const others = session.participants.filter((p) => !p.isYou);
  if (!others.length) {
    void vscode.window.showInformationMessage("Collab: nobody else is in the session.");
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    others.map((p) => ({ label: p.name, description: `${p.role} · ${p.online ? p.status : "offline"}${p.file ? ` · ${p.file}:${p.line ?? ""}` : ""}`, userId: p.userId })),
    { placeHolder },
  );
  return pick?.userId;
}

export function registerCommands(session: Session): vscode.Disposable[] {
  const x = session.sidecar;
  const reg = (id: string, fn: (...args: never[]) => unknown) => vscode.commands.registerCommand(id, fn);
  return [
    reg("collab.joinSession", (args?: JoinArgs) => join(session, args)),
    reg("collab.startSession", async () => {
      const s = getSettings();
      const relayUrl = await vscode.window.showInputBox({ title: "Collab: Start Session (1/3)", prompt: "Relay URL", value: s.relayUrl, ignoreFocusOut: true, validateInput: relayUrlError });
      if (!relayUrl) return;
      const title = await vscode.window.showInputBox({ title: "Collab: Start Session (2/3)", prompt: "Session title", ignoreFocusOut: true, validateInput: (v) => (v.trim() ? undefined : "a title is needed") });
      if (!title) return;
      const token = await vscode.window.showInputBox({ title: "Collab: Start Session (3/3)", prompt: "Team token (collab-relay token --user NAME); kept in secret storage", password: true, value: (await session.tokens.get(relayUrl)) ?? "", ignoreFocusOut: true });
      if (!token) return;
      if (!x.running && !(await x.start())) return;
      const result = await session.run("start session", () => x.execute<SessionState>("createSession", { title, relayUrl, token }));
      if (result) {
        await saveRelay(relayUrl);
        await session.tokens.set(relayUrl, token);
      }
    }),
    reg("collab.leaveSession", () => session.run("leave", () => x.execute("leave"))),
    reg("collab.invite", async () => {
      const role = await vscode.window.showQuickPick(
        [{ label: "editor", description: "can chat, comment and edit the session" }, { label: "viewer", description: "can follow and read" }],
        { placeHolder: "Invite as" },
      );
      if (!role) return;
      const r = await session.run("invite", () => x.execute<{ link: string; token: string; expiresAt: string }>("invite", { role: role.label }));
      if (!r) return;
      await vscode.env.clipboard.writeText(r.link);
      const choice = await vscode.window.showInformationMessage(
        `Collab: invite link for ${role.label === "editor" ? "an" : "a"} ${role.label} copied (single use, expires ${r.expiresAt}).`,
        "Copy VS Code link instead",
      );
      if (choice) await vscode.env.clipboard.writeText(vscodeInviteLink(EXTENSION_ID, parseInvite(r.link), vscode.env.uriScheme));
    }),
    reg("collab.follow", async (item?: unknown) => {
      const userId = await pickParticipant(session, "Follow whom?", item);
      if (userId) await session.run("follow", () => x.execute("follow", { userId }));
    }),
    reg("collab.stopFollowing", () => session.run("stop following", () => x.execute("unfollow"))),
    reg("collab.addComment", async () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor) return void vscode.window.showInformationMessage("Collab: open a file to comment on.");
      const s = editor.selection;
      const text = await vscode.window.showInputBox({ prompt: s.isEmpty ? `Comment on line ${s.active.line + 1}` : `Comment on lines ${s.start.line + 1}–${s.end.line + 1}`, ignoreFocusOut: true });
      if (!text) return;
      const where = commentRange({ line: s.start.line, character: s.start.character }, { line: s.end.line, character: s.end.character });
      await session.run("add comment", () => x.execute("addComment", { uri: editor.document.uri.toString(), ...where, text }));
    }),
    reg("collab.showParticipants", () => vscode.commands.executeCommand("collab.participants.focus")),
    reg("collab.openChat", () => session.chat.show()),
    reg("collab.removeParticipant", async (item?: unknown) => {
      const userId = await pickParticipant(session, "Remove whom?", item);
      if (!userId) return;
      const name = session.participants.find((p) => p.userId === userId)?.name ?? userId;
      const ok = await vscode.window.showWarningMessage(`Remove ${name} from the session? They cannot rejoin with their token.`, { modal: true }, "Remove");
      if (ok) await session.run("remove", () => x.execute("remove", { userId }));
    }),
    reg("collab.changeRole", async (item?: unknown) => {
      const userId = await pickParticipant(session, "Change whose role?", item);
      if (!userId) return;
      const role = await vscode.window.showQuickPick(["host", "editor", "viewer"] as Role[], { placeHolder: "New role" });
      if (role) await session.run("change role", () => x.execute("changeRole", { userId, role }));
    }),
    reg("collab.endSession", async () => {
      const ok = await vscode.window.showWarningMessage("End the session for everyone? Nobody can join it again.", { modal: true }, "End Session");
      if (ok) await session.run("end session", () => x.execute("endSession"));
    }),
    reg("collab.restartSidecar", async () => {
      if (await x.restart()) void vscode.window.setStatusBarMessage("Collab: sidecar restarted", 3000);
    }),
    reg("collab.showLogs", () => session.log.show()),
    // Comment thread actions (Comments API menus).
    reg("collab.comment.create", async (reply: vscode.CommentReply) => {
      const thread = reply.thread;
      const range = thread.range ?? new vscode.Range(0, 0, 0, 0);
      const uri = thread.uri.toString();
      thread.dispose();
      const where = commentRange(
        { line: range.start.line, character: range.start.character },
        { line: range.end.line, character: range.end.character },
      );
      await session.run("add comment", () => x.execute("addComment", { uri, ...where, text: reply.text }));
    }),
    reg("collab.comment.reply", async (reply: vscode.CommentReply) => {
      const threadId = session.comments.threadId(reply.thread);
      if (threadId) await session.run("reply", () => x.execute("reply", { threadId, text: reply.text }));
    }),
    reg("collab.comment.resolve", async (thread: vscode.CommentThread) => {
      const threadId = session.comments.threadId(thread);
      if (threadId) await session.run("resolve", () => x.execute("resolve", { threadId }));
    }),
    reg("collab.comment.reopen", async (thread: vscode.CommentThread) => {
      const threadId = session.comments.threadId(thread);
      if (threadId) await session.run("reopen", () => x.execute("reopen", { threadId }));
    }),
    reg("collab.comment.edit", (comment: CollabComment) => {
      comment.mode = vscode.CommentMode.Editing;
      comment.thread.comments = [...comment.thread.comments];
    }),
    reg("collab.comment.saveEdit", async (comment: CollabComment) => {
      const text = typeof comment.body === "string" ? comment.body : comment.body.value;
      comment.mode = vscode.CommentMode.Preview;
      comment.thread.comments = [...comment.thread.comments];
      if (text !== comment.savedBody) await session.run("edit comment", () => x.execute("editMessage", { messageId: comment.view.id, text }));
    }),
    reg("collab.comment.cancelEdit", (comment: CollabComment) => {
      comment.body = comment.savedBody;
      comment.mode = vscode.CommentMode.Preview;
      comment.thread.comments = [...comment.thread.comments];
    }),
    reg("collab.comment.delete", async (comment: CollabComment) => {
      const ok = await vscode.window.showWarningMessage("Delete this comment for everyone?", { modal: true }, "Delete");
      if (ok) await session.run("delete comment", () => x.execute("deleteMessage", { messageId: comment.view.id }));
    }),
  ];
}
