// A spec whose encoded submit exceeds the server's max_payload is refused by the CLI itself, before
// sending, with a message that says the spec is too large and how to shrink it (the client library's own
// "max_payload size exceeded" names neither the spec nor a remedy).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { runCli } from "../helpers/run_cli.js";

const MAX_PAYLOAD = 64 * 1024;
let server: NatsServer;
let dir: string;

before(async () => {
  server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
  dir = mkdtempSync(path.join(tmpdir(), "ringtune-cli-large-"));
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("submit of a spec over the server's max_payload says the spec is too large and exits non-zero", async () => {
  const entries = Array.from({ length: 4000 }, (_, i) => `  - {path: data/part-${String(i).padStart(5, "0")}.jsonl}`);
  const spec = path.join(dir, "large.yaml");
  writeFileSync(
    spec,
    `model: {init: {config: models/tiny.json}}\ntokenizer: byte\nmax_steps: 5\ndata:\n${entries.join("\n")}\n`,
  );
  const r = await runCli(["submit", spec, "--nats", server.url]);
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /the spec is too large: \d+ bytes encoded, over the NATS server's max_payload of 65536 bytes/);
  assert.match(r.stderr, /list fewer data entries, or name a LLaMA-Factory dataset_dir/);
  assert.doesNotMatch(r.stderr, /MAX_PAYLOAD_EXCEEDED|max_payload size exceeded/i);
});
