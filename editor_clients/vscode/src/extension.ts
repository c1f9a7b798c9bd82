/** Wiring only: the session, the commands, the URI handler. The logic lives in src/core and src/vscode. */
import * as vscode from "vscode";
import { Session } from "./vscode/session";
import { join, registerCommands } from "./vscode/commands";

let session: Session | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("Collab", { log: true });
  session = new Session(context, log);
  const s = session;
  context.subscriptions.push(
    log,
    s,
    ...registerCommands(s),
    // vscode://collab-lsp.collab-lsp/join?relay=…&token=… joins in one click (§3.3).
    vscode.window.registerUriHandler({
      handleUri: (uri) => {
        if (uri.path === "/join") void join(s, { invite: uri.toString(true) });
      },
    }),
  );
  await s.sidecar.start();
}

export async function deactivate(): Promise<void> {
  await session?.sidecar.stop();
}
