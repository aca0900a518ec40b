// A worker checks the paths of the coordinator's commands against its own roots: an assign that names a
// model, config, checkpoint or adapter outside its data and output roots, or a save into a folder outside
// its output roots, is answered with an error naming the field, before anything is read or written.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import type { PathRoots } from "../../files/path_roots.js";
import { decodeCommandReply, encodeCommandRequest, type CommandRequest } from "../../proto/mod.js";
import { checkAssignPaths, checkSavePath } from "../../worker/command_paths.js";
import { JobRunner } from "../../worker/job_runner.js";
import { TINY_BYTE_LLAMA } from "../helpers/tiny_model.js";

const top = realpathSync(mkdtempSync(path.join(tmpdir(), "ringtune-worker-roots-")));
after(() => rmSync(top, { recursive: true, force: true }));
const data = path.join(top, "data");
const outputs = path.join(top, "outputs");
const outside = path.join(top, "elsewhere");
for (const d of [data, outputs, outside]) mkdirSync(d);
const roots: PathRoots = { data: [data], output: [outputs] };
writeFileSync(path.join(data, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
writeFileSync(path.join(outside, "model.json"), JSON.stringify(TINY_BYTE_LLAMA));
symlinkSync(outside, path.join(outputs, "link-out"));

function assign(model: CommandRequest<"assign">["model"]): CommandRequest<"assign"> {
  return {
    job: "j1",
    ring: "r1",
    rank: 0,
    size: 1,
    transport: "tcp",
    model,
    optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0, grad_clip: 1 },
  };
}

const save = (dir: string): CommandRequest<"save"> => ({
  job: "j1",
  dir,
  what: "model",
  dtype: "F32",
  with_optimizer: false,
});

test("inputs under the data or output roots and outputs under the output roots pass", () => {
  const init = { config: path.join(data, "model.json"), seed: 1 };
  checkAssignPaths(assign({ init, resume: path.join(outputs, "job", "checkpoints", "step-000002") }), roots);
  checkSavePath(save(path.join(outputs, "job", "final", "model")), roots);
});

test("each input field outside the roots is refused by name", () => {
  const cases: [string, CommandRequest<"assign">["model"]][] = [
    ["model.path", { path: "/etc" }],
    ["model.init.config", { init: { config: path.join(outside, "model.json"), seed: 1 } }],
    ["model.resume", { resume: path.join(data, "..", "elsewhere") }],
    ["model.adapter", { path: path.join(data), adapter: path.join(outputs, "link-out", "adapter") }],
  ];
  for (const [field, model] of cases)
    assert.throws(
      () => checkAssignPaths(assign(model), roots),
      (e: Error) => e.message.startsWith(`${field}: `) && /worker's data root/.test(e.message),
      field,
    );
});

test("a save into the data root, or through a link out of the output root, is refused", () => {
  const refusal = (pattern: RegExp) => (e: Error) => pattern.test(e.message);
  assert.throws(
    () => checkSavePath(save(path.join(data, "model")), roots),
    refusal(/^dir: .*outside the worker's output root/),
  );
  assert.throws(
    () => checkSavePath(save(path.join(outputs, "link-out", "model")), roots),
    refusal(/^dir: .*leads out of the worker's output root\(s\) .* through a symbolic link/),
  );
});

test("a worker with roots answers such commands with an error and touches nothing", async () => {
  // Refused before the connection is used: a stand-in is enough.
  const runner = new JobRunner({} as NatsConnection, pino({ level: "silent" }));
  runner.pathRoots = roots;
  const init = { config: path.join(outside, "model.json"), seed: 1 };
  const reply = decodeCommandReply(
    "assign",
    await runner.handle("assign", encodeCommandRequest("assign", assign({ init }))),
  );
  assert.equal(reply.ok, false);
  assert.match(reply.error ?? "", /^model\.init\.config: .* is outside the worker's data root/);
  assert.equal(runner.currentJob, undefined);
  const saved = decodeCommandReply(
    "save",
    await runner.handle("save", encodeCommandRequest("save", save(path.join(outside, "m")))),
  );
  assert.equal(saved.ok, false);
  assert.match(saved.error ?? "", /^dir: .* is outside the worker's output root/);
  assert.deepEqual(readdirSync(outside), ["model.json"]);
});
