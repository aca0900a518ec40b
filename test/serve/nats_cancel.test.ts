// A NATS client stops a generation by publishing the request's reply subject on serveSubjects.cancel: a
// stream ends at once with its empty message, a plain request is answered with what was generated and
// finish_reason "cancelled", and the server goes on serving.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { serveSubjects } from "../../proto/serve_subjects.js";
import type { RunningServer } from "../../serving/server.js";
import { startNatsServer, type NatsServer } from "../helpers/nats_server.js";
import { serveFixture, startTestServer, type Json } from "../helpers/serve_fixtures.js";

let nats: NatsServer;
let serverNc: NatsConnection;
let clientNc: NatsConnection;
let server: RunningServer;

before(async () => {
  nats = await startNatsServer();
  serverNc = await connect({ servers: nats.url });
  clientNc = await connect({ servers: nats.url });
  server = await startTestServer(await serveFixture(), { http: undefined, nats: serverNc });
});

after(async () => {
  await server?.close();
  await serverNc?.close();
  await clientNc?.close();
  await nats?.stop();
});

/** Long enough that no machine finishes it before the cancel lands: most of the tiny model's context. */
const LONG = { prompt: [72, 105, 33], max_tokens: 240, temperature: 0, ignore_eos: true };

function cancel(inbox: string): void {
  clientNc.publish(serveSubjects.cancel, JSON.stringify({ reply: inbox }));
}

test("a cancel message naming a stream's reply subject ends the stream, and the server serves on", async () => {
  const before = server.ctx.engine.finished.cancelled;
  const inbox = createInbox();
  const sub = clientNc.subscribe(inbox);
  clientNc.publish(serveSubjects.completions("r4"), JSON.stringify({ ...LONG, stream: true }), { reply: inbox });
  let chunks = 0;
  let finish: string | null = null;
  for await (const m of sub) {
    if (m.data.length === 0) break;
    const c = m.json<Json>();
    finish = c.choices[0]?.finish_reason ?? finish;
    if (chunks++ === 0) cancel(inbox);
  }
  sub.unsubscribe();
  assert.ok(chunks < LONG.max_tokens, `the stream ran to its end (${chunks} chunks) instead of stopping`);
  assert.equal(finish, null, "a cancelled stream sends no finish chunk");
  assert.equal(server.ctx.engine.finished.cancelled, before + 1);
  const next = await clientNc.request(serveSubjects.completions("r4"), JSON.stringify({ ...LONG, max_tokens: 3 }), {
    timeout: 60_000,
  });
  assert.equal(next.json<Json>().choices[0].finish_reason, "length");
});

test("a cancelled plain request is answered with what it generated and finish_reason 'cancelled'", async () => {
  const inbox = createInbox();
  const sub = clientNc.subscribe(inbox, { max: 1 });
  // One connection's messages reach the server in order: the cancel lands right after the request.
  clientNc.publish(serveSubjects.completions("base"), JSON.stringify({ ...LONG, return_token_ids: true }), {
    reply: inbox,
  });
  cancel(inbox);
  for await (const m of sub) {
    const r = m.json<Json>();
    assert.equal(r.choices[0].finish_reason, "cancelled");
    assert.ok(r.choices[0].token_ids.length < LONG.max_tokens);
  }
});

test("a cancel for a reply subject nothing runs under, or a body that is not JSON, changes nothing", async () => {
  clientNc.publish(serveSubjects.cancel, JSON.stringify({ reply: createInbox() }));
  clientNc.publish(serveSubjects.cancel, "not json");
  const r = await clientNc.request(serveSubjects.completions("r2"), JSON.stringify({ ...LONG, max_tokens: 4 }), {
    timeout: 60_000,
  });
  assert.equal(r.json<Json>().usage.completion_tokens, 4);
});
