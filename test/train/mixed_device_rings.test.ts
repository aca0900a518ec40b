// A ring whose ranks compute on devices of more than one kind is told so when it is assigned: its ranks then
// update their weights with the host's arithmetic (host_update), so the weight checksum can compare them exactly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assignRequest, ringMixesDevices } from "../../coordinator/train/assign.js";
import { jobSpecSchema } from "../../spec/job_spec.js";

test("a ring mixes devices when its ranks' device kinds differ, whatever the GPU numbers", () => {
  const cpu = "cpu (AMD EPYC 7B13)",
    emu = "cuda-emu (CUDA emulator on the CPU: slow)";
  const h100 = (n: number) => `cuda:${n} (NVIDIA H100 80GB HBM3)`;
  assert.equal(ringMixesDevices([cpu, cpu]), false);
  assert.equal(ringMixesDevices([h100(0), h100(1), h100(7)]), false);
  assert.equal(ringMixesDevices([emu, cpu]), true);
  assert.equal(ringMixesDevices([h100(0), cpu]), true);
  assert.equal(ringMixesDevices([h100(0), emu]), true);
  assert.equal(ringMixesDevices([cpu, undefined]), false, "a worker of unknown device does not count");
});

test("the assign command of a mixed ring asks for host_update, and only then", () => {
  const spec = jobSpecSchema.parse({ model: { init: { config: "m.json", seed: 1 } }, data: [{ path: "d.jsonl" }] });
  const place = { job: "j", ring: "r", rank: 0, size: 2, resumeDir: undefined, lora: undefined };
  const secret = new Uint8Array(16);
  assert.equal(assignRequest(spec, { ...place, ringSecret: secret, mixedDevices: true }).optimizer.host_update, true);
  assert.equal(assignRequest(spec, { ...place, ringSecret: secret }).optimizer.host_update, undefined);
});
