/**
 * Finding the collab-lsp executable, in this documented order:
 *   1. the `collab.sidecarPath` setting (a path, `~` expanded, relative to the workspace);
 *   2. the Python environment: $VIRTUAL_ENV, then the workspace's `.venv` / `venv`;
 *   3. `collab-lsp` on PATH.
 */
import * as path from "node:path";

export interface SidecarSearch {
  setting: string | undefined;
  workspaceFolders: string[];
  env: Record<string, string | undefined>;
  home: string;
  platform: NodeJS.Platform;
  isExecutable(file: string): boolean;
}

export interface SidecarFound { command: string; source: "setting" | "python environment" | "PATH" }

export class SidecarNotFound extends Error {
  constructor(readonly tried: string[], readonly settingPath?: string) {
    super(
      settingPath
        ? `collab-lsp was not found at ${settingPath} (the collab.sidecarPath setting).`
        : "collab-lsp (the collaboration sidecar) was not found. Install it with `pip install collab-lsp` " +
          "(or ./scripts/quickstart.sh in the collab-lsp repository) and set collab.sidecarPath to the " +
          "collab-lsp executable, or put it on PATH.",
    );
  }
}

export function findSidecar(search: SidecarSearch): SidecarFound {
  const exe = search.platform === "win32" ? "collab-lsp.exe" : "collab-lsp";
  const bin = search.platform === "win32" ? "Scripts" : "bin";
  const tried: string[] = [];
  const setting = search.setting?.trim();
  if (setting) {
    let file = setting.startsWith("~") ? path.join(search.home, setting.slice(1)) : setting;
    if (!path.isAbsolute(file) && search.workspaceFolders.length) file = path.join(search.workspaceFolders[0], file);
    if (search.isExecutable(file)) return { command: file, source: "setting" };
    throw new SidecarNotFound([file], file);
  }
  const envs = [search.env.VIRTUAL_ENV, ...search.workspaceFolders.flatMap((f) => [path.join(f, ".venv"), path.join(f, "venv")])];
  for (const env of envs) {
    if (!env) continue;
    const file = path.join(env, bin, exe);
    tried.push(file);
    if (search.isExecutable(file)) return { command: file, source: "python environment" };
  }
  const sep = search.platform === "win32" ? ";" : ":";
  for (const dir of (search.env.PATH ?? "").split(sep)) {
    if (!dir) continue;
    const file = path.join(dir, exe);
    tried.push(file);
    if (search.isExecutable(file)) return { command: file, source: "PATH" };
  }
  throw new SidecarNotFound(tried);
}
