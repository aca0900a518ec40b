// `ringtune export --merge`: a base model plus a PEFT LoRA adapter written as one Hugging Face model
// (W += scale * B A in fp32), for serving without adapter support.
import path from "node:path";
import { parseFlags, requireFlag, UsageError } from "../args.js";
import { deviceFromFlags } from "../device_flag.js";
import { DEVICE_FLAG_HELP, modelDevice } from "../../native/js/compute_device.js";
import type { Command } from "../args.js";
import { loadModel, saveModel } from "../../hf/hf_model.js";
import { applyAdapter } from "../../hf/peft_adapter.js";
import { readTrainedText, writeTrainedText } from "../../hf/trained_text.js";

const usage = `usage: ringtune export --merge --model BASE_DIR --adapter ADAPTER_DIR --out DIR [--dtype F32|BF16]
  [${DEVICE_FLAG_HELP}]

Loads the base model folder, applies the PEFT LoRA adapter (adapter_config.json,
adapter_model.safetensors), merges it into the weights and writes a Hugging Face model folder:
config.json, generation_config.json, model.safetensors, the base's tokenizer files and the adapter's
ringtune.json (the template, options and tokenizer its job trained with, which ringtune serve renders with).`;

export const exportCommand: Command = {
  name: "export",
  summary: "merge a PEFT LoRA adapter into its base model and write one HF model",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      merge: { type: "boolean", default: false },
      model: { type: "string" },
      adapter: { type: "string" },
      out: { type: "string" },
      dtype: { type: "string", default: "F32" },
      device: { type: "string" },
    });
    const device = deviceFromFlags(values, { cudaEmu: true });
    // --merge is the only export there is; it is required so the command says what it does
    if (!values.merge)
      throw new UsageError("--merge is required (export writes the base model with the adapter merged in)");
    const base = requireFlag(values, "model");
    const adapter = requireFlag(values, "adapter");
    const out = requireFlag(values, "out");
    const dtype = values.dtype;
    if (dtype !== "F32" && dtype !== "BF16") throw new UsageError(`--dtype must be F32 or BF16, got '${dtype}'`);
    if (path.resolve(out) === path.resolve(base))
      throw new UsageError(`--out ${out} is the base model folder; write the merged model elsewhere`);
    if (path.resolve(out) === path.resolve(adapter))
      throw new UsageError(`--out ${out} is the adapter folder; write the merged model elsewhere`);
    const { model, config } = await loadModel(base, { device: modelDevice(device) });
    const settings = await applyAdapter(model, adapter);
    await model.mergeLora();
    await saveModel(model, config, out, { dtype, sourceDir: base });
    // The merged model is served as the adapter was trained: its job's template, options and tokenizer.
    const recorded = readTrainedText(adapter) ?? readTrainedText(path.dirname(adapter));
    if (recorded) {
      const { job, ...text } = recorded;
      await writeTrainedText(out, text, { id: job ?? "unknown", method: "merged" });
    }
    const scale = settings.rslora ? settings.alpha / Math.sqrt(settings.rank) : settings.alpha / settings.rank;
    console.error(
      `wrote ${out}: ${base} + ${adapter} (r ${settings.rank}, scale ${scale}, ${settings.targets.join(" ")}), ${dtype}, ` +
        `merged on ${model.backendName()}`,
    );
  },
};
