// `ringtune generate`: continue a prompt given as token ids (text prompts come with the tokenizer),
// greedy by default, stopping on the model's EOS ids; prints the new ids comma-separated.
import { parseFlags, requireFlag, intFlag, UsageError } from "../args.js";
import { deviceFromFlags } from "../device_flag.js";
import { DEVICE_FLAG_HELP, modelDevice } from "../../native/js/compute_device.js";
import type { Command } from "../args.js";
import { loadModel } from "../../hf/hf_model.js";
import { eosTokenIds, readGenerationConfig } from "../../hf/generation_config.js";
import { applyAdapter } from "../../hf/peft_adapter.js";

const usage = `usage: ringtune generate --model DIR [--adapter DIR] --prompt-ids 1,2,3 [--max-new 20] [--temperature T] [--top-p P] [--seed S]
  [${DEVICE_FLAG_HELP}]

Temperature 0 (the default) is greedy decoding; otherwise tokens are sampled from the top-p nucleus.
Stops after --max-new tokens or on an EOS id (generation_config.json, else config.json).
--adapter applies a PEFT LoRA adapter folder to the model first.`;

function numberFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  ok: (n: number) => boolean,
  want: string,
): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n) || !ok(n)) throw new UsageError(`--${name} must be ${want}, got '${String(v)}'`);
  return n;
}

function parseIds(text: string, vocabSize: number): Int32Array {
  const parts = text.split(",").map((s) => s.trim());
  const ids = parts.map(Number);
  ids.forEach((id, i) => {
    if (parts[i] === "" || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new UsageError(`--prompt-ids: '${parts[i]}' is not a token id below vocab_size ${vocabSize}`);
    }
  });
  return Int32Array.from(ids);
}

export const generate: Command = {
  name: "generate",
  summary: "generate token ids from a prompt of token ids",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      model: { type: "string" },
      "prompt-ids": { type: "string" },
      "max-new": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string" },
      adapter: { type: "string" },
      device: { type: "string" },
    });
    const device = deviceFromFlags(values, { cudaEmu: true });
    const dir = requireFlag(values, "model");
    const promptText = requireFlag(values, "prompt-ids");
    const maxNew = intFlag(values, "max-new", 20);
    if (maxNew < 1) throw new UsageError(`--max-new must be at least 1, got ${maxNew}`);
    const temperature = numberFlag(values, "temperature", 0, (n) => n >= 0, "a number >= 0");
    const topP = numberFlag(values, "top-p", 1, (n) => n > 0 && n <= 1, "a number in (0, 1]");
    const seed = intFlag(values, "seed", 0);
    const { model, config } = await loadModel(dir, { device: modelDevice(device) });
    if (typeof values.adapter === "string") await applyAdapter(model, values.adapter);
    const promptIds = parseIds(promptText, config.native.vocabSize);
    const eos = eosTokenIds(await readGenerationConfig(dir), config);
    const out = await model.generate({ promptIds, maxNew, temperature, topP, seed, eosIds: Int32Array.from(eos) });
    console.log(Array.from(out).join(","));
    if (device.kind !== "cpu") console.error(`generated on ${model.backendName()}`);
  },
};
