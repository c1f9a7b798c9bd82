/** The sidecar process and its LSP client: start, stop, restart, execute collab.server.* commands. */
import * as vscode from "vscode";
import * as fs from "node:fs";
import * as os from "node:os";
import {
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type Middleware,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";
import { findSidecar, SidecarNotFound, type SidecarFound } from "../core/sidecarPath";
import { getSettings } from "./settings";

export type NotificationHandlers = Record<string, (params: never) => void>;

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export function locateSidecar(): SidecarFound {
  return findSidecar({
    setting: getSettings().sidecarPath,
    workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
    env: process.env,
    home: os.homedir(),
    platform: process.platform,
    isExecutable,
  });
}

export class Sidecar implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<boolean> | undefined;
  private readonly stateEmitter = new vscode.EventEmitter<boolean>();
  /** Fires true when the sidecar is running, false when it stopped. */
  readonly onDidChangeRunning = this.stateEmitter.event;

  constructor(
    private readonly log: vscode.LogOutputChannel,
    private readonly handlers: NotificationHandlers,
    private readonly middleware: Middleware,
    private readonly initOptions: () => Promise<Record<string, unknown>>,
  ) {}

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  /**
   * Start the sidecar, or join a start in progress: a second LanguageClient would register the
   * collab.server.* commands again and fail (a vscode:// link opened while the extension
   * activates calls this while activate's own start still runs).
   */
  start(): Promise<boolean> {
    if (this.running) return Promise.resolve(true);
    this.starting ??= this.startClient().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async startClient(): Promise<boolean> {
    let found: SidecarFound;
    try {
      found = locateSidecar();
    } catch (error) {
      const message = error instanceof SidecarNotFound ? error.message : String(error);
      this.log.error(message);
      if (error instanceof SidecarNotFound) this.log.info(`looked in: ${error.tried.join(", ")}`);
      void vscode.window.showErrorMessage(message, "Open Settings", "Show Logs").then((choice) => {
        if (choice === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "collab.sidecarPath");
        if (choice === "Show Logs") this.log.show();
      });
      return false;
    }
    this.log.info(`starting ${found.command} (found via ${found.source})`);
    const settings = getSettings();
    const serverOptions: ServerOptions = {
      command: found.command,
      args: [],
      options: { env: { ...process.env, COLLAB_LOG_LEVEL: settings.logLevel } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }],
      outputChannel: this.log,
      revealOutputChannelOn: 4, // never
      initializationOptions: await this.initOptions(),
      middleware: this.middleware,
    };
    const client = new LanguageClient("collab", "Collab", serverOptions, clientOptions);
    for (const [method, handler] of Object.entries(this.handlers)) {
      client.onNotification(method, handler as (params: unknown) => void);
    }
    client.onDidChangeState((e) => this.stateEmitter.fire(e.newState === State.Running));
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.log.error(`the sidecar did not start: ${String(error)}`);
      void vscode.window.showErrorMessage(`Collab: the sidecar (${found.command}) did not start: ${String(error)}`, "Show Logs").then((c) => {
        if (c) this.log.show();
      });
      return false;
    }
    return true;
  }

  async stop(): Promise<void> {
    await this.starting?.catch(() => false);
    const client = this.client;
    this.client = undefined;
    if (client && client.state !== State.Stopped) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.log.warn(`stopping the sidecar: ${String(error)}`);
      }
    }
  }

  async restart(): Promise<boolean> {
    await this.stop();
    return this.start();
  }

  /** Run collab.server.<name> with one argument object (§7.1). Throws the JSON-RPC error. */
  async execute<T = unknown>(name: string, args: Record<string, unknown> = {}): Promise<T> {
    if (!this.client || !this.running) throw new Error("the collab-lsp sidecar is not running (Collab: Restart Sidecar)");
    return (await this.client.sendRequest(ExecuteCommandRequest.type, {
      command: `collab.server.${name}`,
      arguments: [args],
    })) as T;
  }

  notify(method: string, params: unknown): void {
    if (this.client && this.running) void this.client.sendNotification(method, params);
  }

  dispose(): void {
    void this.stop();
    this.stateEmitter.dispose();
  }
}
