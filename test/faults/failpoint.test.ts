// The worker's fault-injection variable: what it accepts, and that a malformed one is refused naming it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFailpoint } from "../../worker/failpoint.js";

test("RINGTUNE_FAILPOINT names a command, a signal and which time it fires", () => {
  assert.equal(parseFailpoint(undefined), undefined);
  assert.equal(parseFailpoint(""), undefined);
  assert.deepEqual(parseFailpoint("save:SIGKILL"), { command: "save", signal: "SIGKILL", nth: 1 });
  assert.deepEqual(parseFailpoint("step:SIGSTOP@7"), { command: "step", signal: "SIGSTOP", nth: 7 });
});

test("a malformed RINGTUNE_FAILPOINT is refused, naming the variable and the form", () => {
  for (const bad of ["save", "save:SIGHUP", "save:SIGKILL@0", "save:kill", "Save:SIGKILL"])
    assert.throws(() => parseFailpoint(bad), /RINGTUNE_FAILPOINT: expected COMMAND:SIGNAL\[@N\]/, bad);
});
