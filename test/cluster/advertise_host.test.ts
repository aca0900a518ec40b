// A worker resolves the name it advertises to its ring neighbours itself, so that they never depend on
// their own DNS knowing it: the name's address goes out, an unresolvable name stops the worker saying so.
import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import { resolveAdvertiseHost } from "../../worker/advertise_host.js";

const log = pino({ level: "silent" });

test("an address is advertised as given; a host name as the address it resolves to on the worker", async () => {
  assert.equal(await resolveAdvertiseHost("10.1.2.3", log), "10.1.2.3");
  assert.equal(await resolveAdvertiseHost("::1", log), "::1");
  assert.match(await resolveAdvertiseHost("localhost", log), /^(127\.0\.0\.1|::1)$/);
});

test("a name that does not resolve stops the worker at start, naming the flag and the name", async () => {
  await assert.rejects(
    resolveAdvertiseHost("no-such-worker.invalid", log, 300),
    /--advertise-host no-such-worker\.invalid: does not resolve on this worker \((ENOTFOUND|EAI_AGAIN)/,
  );
});
