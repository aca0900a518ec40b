// An error's name is what a log line and a stack trace show: every error class of the model files and the
// wire protocol reports its own class's name, and an error about a file begins with that file.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as hfErrors from "../../hf/errors.js";
import { AdapterConfigError, UnsupportedAdapterError } from "../../hf/peft_adapter.js";
import { ProtocolDecodeError, ProtocolVersionError } from "../../proto/errors.js";

test("each model-file error is named as its own class and names its file", () => {
  const classes = [...Object.values(hfErrors), AdapterConfigError, UnsupportedAdapterError];
  assert.equal(classes.length, 11);
  for (const Kind of classes) {
    const err = new Kind("model/config.json", "bad field", { cause: "why" });
    assert.equal(err.name, Kind.name);
    assert.equal(err.file, "model/config.json");
    assert.equal(err.message, "model/config.json: bad field");
    assert.equal(err.cause, "why");
    assert.ok(err instanceof hfErrors.ModelFormatError);
    assert.match(String(err.stack), new RegExp(`^${Kind.name}: model/config.json: bad field`));
  }
});

test("protocol errors are named as their classes and name the message type", () => {
  const decode = new ProtocolDecodeError("step", "batch.labels: too long");
  assert.equal(decode.name, "ProtocolDecodeError");
  assert.equal(decode.messageType, "step");
  assert.equal(decode.message, "step: batch.labels: too long");
  const version = new ProtocolVersionError("hello", 3, 2);
  assert.equal(version.name, "ProtocolVersionError");
  assert.match(version.message, /^hello: protocol version mismatch: this process speaks v3, the peer sent v2/);
});
