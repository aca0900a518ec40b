// The JSON logs of the cluster processes: pino lines on stderr naming the process (`worker` id), at the
// level LOG_LEVEL sets; a LOG_LEVEL that is no level stops the process with a message naming it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { startNatsServer } from "../helpers/nats_server.js";
import { RINGTUNE_CLI, runRingtune } from "../helpers/processes.js";

test("a LOG_LEVEL that is no level is refused by name", async () => {
  const r = await runRingtune(["worker", "--nats", "nats://127.0.0.1:1", "--id", "wbad", "--insecure"], {
    env: { LOG_LEVEL: "loud" },
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /LOG_LEVEL: 'loud' is not a log level \(one of fatal, error, warn, info, debug/);
});

test("a worker logs JSON lines with its id, its pid and the level, on stderr", { timeout: 60_000 }, async () => {
  const server = await startNatsServer();
  const child = spawn(
    process.execPath,
    [RINGTUNE_CLI, "worker", "--nats", server.url, "--id", "wlog", "--http", "127.0.0.1:0", "--insecure"],
    { env: { ...process.env, LOG_LEVEL: "debug" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  try {
    const lines: Record<string, unknown>[] = [];
    let pending = "";
    const waiting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no 'waiting for a coordinator' line in ${pending}`)), 45_000);
      child.stderr.on("data", (b: Buffer) => {
        pending += b.toString();
        const parts = pending.split("\n");
        pending = parts.pop()!;
        for (const part of parts) {
          lines.push(JSON.parse(part) as Record<string, unknown>); // every line is JSON
          if (String(lines.at(-1)!.msg).startsWith("waiting for a coordinator")) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
    });
    await waiting;
    for (const line of lines) {
      assert.equal(line.worker, "wlog", JSON.stringify(line));
      assert.equal(line.pid, child.pid);
      assert.equal(typeof line.level, "number");
    }
    assert.ok(lines.some((l) => l.msg === "http server listening" && typeof l.port === "number"));
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("close", r));
    await server.stop();
  }
});
