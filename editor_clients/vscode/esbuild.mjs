import * as esbuild from "esbuild";

const production = process.argv.includes("--production");
const common = { bundle: true, minify: production, sourcemap: !production, logLevel: "info" };

await esbuild.build({
  ...common,
  entryPoints: ["src/extension.ts"],
  outfile: "dist/extension.js",
  platform: "node",
  format: "cjs",
  target: "node18",
  external: ["vscode"],
});
await esbuild.build({
  ...common,
  entryPoints: ["src/webview/chat.ts"],
  outfile: "media/chat.js",
  platform: "browser",
  format: "iife",
  target: "es2020",
});
