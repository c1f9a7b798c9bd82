import { test } from "node:test";
import assert from "node:assert/strict";
import { collabInviteLink, InviteError, isInviteLink, parseInvite, relayUrlError, vscodeInviteLink } from "../src/core/inviteLink";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig";

test("parses collab:// links", () => {
  const invite = parseInvite(`collab://join?relay=ws%3A%2F%2F127.0.0.1%3A49033&token=${JWT}`);
  assert.deepEqual(invite, { relayUrl: "ws://127.0.0.1:49033", token: JWT });
});

test("parses vscode:// one-click links and round-trips them", () => {
  const link = vscodeInviteLink("collab-lsp.collab-lsp", { relayUrl: "wss://relay.example.com", token: JWT });
  assert.equal(link, `vscode://collab-lsp.collab-lsp/join?relay=wss%3A%2F%2Frelay.example.com&token=${encodeURIComponent(JWT)}`);
  assert.deepEqual(parseInvite(link), { relayUrl: "wss://relay.example.com", token: JWT });
  assert.deepEqual(parseInvite(`  vscode-insiders://x.y/join?relay=wss://r&token=${JWT}\n`).relayUrl, "wss://r");
});

test("refuses what is not an invite", () => {
  assert.throws(() => parseInvite("hello"), InviteError);
  assert.throws(() => parseInvite("https://x/join?relay=ws://r&token=t"), /scheme/);
  assert.throws(() => parseInvite("collab://join?token=t"), /no relay/);
  assert.throws(() => parseInvite("collab://join?relay=ws://r"), /no token/);
  assert.throws(() => parseInvite("collab://join?relay=ftp://r&token=t"), /relay must be/);
});

test("tells invite links from relay URLs", () => {
  assert.ok(isInviteLink(`collab://join?relay=ws://r&token=${JWT}`));
  assert.ok(!isInviteLink("ws://127.0.0.1:8000"));
  assert.equal(relayUrlError("ws://127.0.0.1:8000"), undefined);
  assert.equal(relayUrlError("wss://relay.example.com"), undefined);
  assert.match(relayUrlError("ftp://x") ?? "", /must look like/);
  assert.match(relayUrlError("") ?? "", /enter/);
});

test("any VS Code build's one-click link becomes the collab:// link the sidecar reads", () => {
  const link = "code-oss://collab-lsp.collab-lsp/join?relay=ws://127.0.0.1:4100&token=a.b_c-d";
  const collab = collabInviteLink(parseInvite(link));
  assert.equal(collab, "collab://join?relay=ws%3A%2F%2F127.0.0.1%3A4100&token=a.b_c-d");
  assert.deepEqual(parseInvite(collab), { relayUrl: "ws://127.0.0.1:4100", token: "a.b_c-d" });
});
