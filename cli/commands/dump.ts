// `ringtune dump`: one forward and backward on a batch, writing the loss, the logits and every
// parameter's gradient, so a user can compare ringtune with another implementation tensor by tensor.
import { parseFlags, requireFlag, UsageError } from "../args.js";
import { deviceFromFlags } from "../device_flag.js";
import { DEVICE_FLAG_HELP, modelDevice } from "../../native/js/compute_device.js";
import type { Command } from "../args.js";
import { loadModel } from "../../hf/hf_model.js";
import { checkBatchVocab, readBatch } from "../../hf/batch.js";
import { forwardBackwardDump } from "../../hf/dump.js";
import { writeSafetensors } from "../../hf/safetensors.js";

const usage = `usage: ringtune dump --model DIR --batch BATCH.json --out OUT.safetensors [${DEVICE_FLAG_HELP}]
       [--precision fp32|bf16]

BATCH.json: {"input_ids": [[..]], "labels": [[..]], "position_ids": [[..]], "segment_ids": [[..]]},
all [rows, T]; labels are per-position targets (already shifted), -100 for no loss; position_ids
(default 0..T-1) and segment_ids (default one segment per row) are optional.
Writes loss [1], logits [rows, T, vocab] and <param>.grad for every parameter, all F32.
--precision: how a CUDA device computes (default fp32, the checking mode; bf16: a training job's bf16 compute,
GEMMs and attention on bf16 operands over fp32 weights); the CPU always computes in fp32.`;

export const dump: Command = {
  name: "dump",
  summary: "one forward+backward on a batch: write loss, logits and all gradients",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      model: { type: "string" },
      batch: { type: "string" },
      out: { type: "string" },
      device: { type: "string" },
      precision: { type: "string" },
    });
    const device = deviceFromFlags(values, { cudaEmu: true });
    const precision = values.precision ?? "fp32";
    if (precision !== "fp32" && precision !== "bf16")
      throw new UsageError(`--precision must be fp32 or bf16, got '${precision}'`);
    const dir = requireFlag(values, "model");
    const batchFile = requireFlag(values, "batch");
    const out = requireFlag(values, "out");
    const batch = await readBatch(batchFile);
    const { model, config } = await loadModel(dir, { device: modelDevice(device), precision });
    checkBatchVocab(batch, config.native.vocabSize, batchFile);
    const { result, tensors } = await forwardBackwardDump(model, batch, config.native.vocabSize);
    await writeSafetensors(out, tensors);
    console.error(`loss ${result.loss} over ${result.targets} targets; wrote ${tensors.length} tensors to ${out}`);
  },
};
