// A 9 MB request body to an HTTP door (serving's OpenAI API, a process's /metrics and dashboard server) gets
// a 413 answer the client can read, not a reset connection, and the server answers the next request.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { startHttpServer } from "../../observe/http_server.js";
import { startHttp } from "../../serving/http_server.js";
import type { ServeApi } from "../../serving/serve_api.js";

const NINE_MB = "x".repeat(9 * 1024 * 1024);

const api: ServeApi = {
  models: () => ({ object: "list", data: [] }),
  completions: () => Promise.resolve({}),
  chat: () => Promise.resolve({ answered: true }),
  loadAdapter: () => Promise.resolve({}),
  unloadAdapter: () => ({}),
};

test("serving's HTTP door answers a 9 MB body with 413 and keeps serving", async () => {
  const door = await startHttp(api, "127.0.0.1", 0);
  try {
    const big = await fetch(`http://${door.address}/v1/chat/completions`, { method: "POST", body: NINE_MB });
    assert.equal(big.status, 413);
    assert.match(((await big.json()) as { error: { message: string } }).error.message, /larger than/);
    const next = await fetch(`http://${door.address}/v1/chat/completions`, { method: "POST", body: "{}" });
    assert.equal(next.status, 200);
  } finally {
    await door.close();
  }
});

test("the metrics and dashboard server answers a 9 MB body with 413 and keeps serving", async () => {
  const server = await startHttpServer(
    { port: 0, host: "127.0.0.1" },
    [
      (_req, res, url) => {
        if (url.pathname !== "/metrics") return false;
        res.end("ok\n");
        return true;
      },
    ],
    pino({ level: "silent" }),
  );
  try {
    const big = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: "POST", body: NINE_MB });
    assert.equal(big.status, 413);
    const next = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(await next.text(), "ok\n");
  } finally {
    await server.close();
  }
});
