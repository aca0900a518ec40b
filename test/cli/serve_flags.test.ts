// The address flags of the serving doors (`ringtune serve --http`, `ringtune coordinator --serve-http`): a
// host and a port, IPv6 in brackets, and a refusal that names the flag and the text it was given.
import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../cli/args.js";
import { parseHostPort } from "../../cli/commands/serve_flags.js";

test("HOST:PORT is read with IPv6 brackets removed", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:8000"), { host: "127.0.0.1", port: 8000 });
  assert.deepEqual(parseHostPort("[::1]:0", "--serve-http"), { host: "::1", port: 0 });
  assert.deepEqual(parseHostPort("0.0.0.0:65535"), { host: "0.0.0.0", port: 65535 });
});

test("an address without a host or with a bad port is refused, naming the flag", () => {
  for (const text of [":8000", "8000", "localhost:", "localhost:65536", "localhost:80.5", "localhost:-1"])
    assert.throws(
      () => parseHostPort(text, "--serve-http"),
      (err: unknown) => err instanceof UsageError && err.message === `--serve-http must be HOST:PORT, got '${text}'`,
      text,
    );
});
