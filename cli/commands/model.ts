// `ringtune model init`: a random-init Hugging Face folder from a config.json, for tests, benchmarks
// and checking ringtune against another implementation on the same weights.
import { parseFlags, requireFlag, intFlag, UsageError } from "../args.js";
import type { Command } from "../args.js";
import { readHfConfig } from "../../hf/hf_config.js";
import { initModel, saveModel } from "../../hf/hf_model.js";

const usage = `usage: ringtune model init --config CONFIG.json --seed N --out DIR [--dtype F32|BF16]

Writes a Hugging Face model folder (config.json, generation_config.json, model.safetensors) whose
weights are drawn from normal(0, initializer_range) with the given seed; norms 1, biases 0.`;

export const modelInit: Command = {
  name: "model init",
  summary: "write a randomly initialised HF model folder from a config.json",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      config: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
      dtype: { type: "string", default: "F32" },
    });
    const configFile = requireFlag(values, "config");
    const out = requireFlag(values, "out");
    const seed = intFlag(values, "seed");
    if (seed < 0) throw new UsageError(`--seed must be a non-negative integer, got ${seed}`);
    const dtype = values.dtype;
    if (dtype !== "F32" && dtype !== "BF16") throw new UsageError(`--dtype must be F32 or BF16, got '${dtype}'`);
    const config = await readHfConfig(configFile);
    const model = await initModel(config, seed);
    await saveModel(model, config, out, { dtype });
    const count = model.params().reduce((s, p) => s + p.size, 0);
    console.error(`wrote ${out}: ${config.architecture}, ${count} parameters, ${dtype}`);
  },
};
