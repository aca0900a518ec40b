// `ringtune serve`: one base model and any number of PEFT adapters behind OpenAI-compatible HTTP and/or
// NATS request/reply, generated in one batch across adapters.
import { parseFlags, requireFlag, intFlag, UsageError } from "../args.js";
import { apiKeyFrom, parseAdapterFlag, parseHostPort } from "./serve_flags.js";
import type { Command } from "../args.js";
import { TEMPLATE_NAMES, type TemplateName } from "../../text/templates/template.js";
import { connectNats, natsUrl } from "../nats_connect.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";
import { ServeProcess } from "../../serve/main.js";
import { parseRootList } from "../../files/path_roots.js";
import { dataRoots } from "../path_roots.js";
import { deviceFromFlags } from "../device_flag.js";
import { DEVICE_FLAG_HELP, modelDevice } from "../../native/js/compute_device.js";

const usage = `usage: ringtune serve --model DIR [--name NAME] [--adapter NAME=DIR|JOB_ID ...] [--http HOST:PORT]
                     [--nats] [--nats-url URL] [--template NAME] [--max-batch N] [--max-context N]
                     [--data-root DIR[:DIR...]] [--adapter-root DIR[:DIR...]] [--api-key-file FILE] [--base-bf16]
                     [${DEVICE_FLAG_HELP}]

Serves the base model in DIR (as NAME, default the folder's name) and each adapter (a PEFT folder, or the
id of a finished LoRA job, looked up over NATS) under its NAME: the 'model' field of a request picks one.
--http: OpenAI-compatible /v1/chat/completions, /v1/completions, /v1/models (default 127.0.0.1:8000
when --nats is not given). --nats (server: --nats-url, else $NATS_URL, else the local cluster's): subjects ringtune.serve.<model>.chat / .completions in a queue group,
so several servers of one model share its requests. Adapters load and unload at run time through
POST /v1/load_lora_adapter {lora_name, lora_path} and /v1/unload_lora_adapter {lora_name}; a folder loaded
that way must lie under --adapter-root (default: the data roots). Everything the server reads (the model, its
adapters, those loaded at run time) must lie under --data-root (default: $RINGTUNE_DATA_ROOT, else the working
directory), as a worker's inputs must; a symbolic link leading out is refused. HTTP clients must send the key in
--api-key-file (or $RINGTUNE_API_KEY) as 'Authorization: Bearer KEY' (the openai client's apiKey); without
one the HTTP door is open to whoever reaches it, and serve warns unless it listens on loopback only.
--base-bf16 holds the base weights in bf16 (half the memory; outputs within bf16 rounding of fp32's).
${NATS_CREDENTIAL_USAGE}`;

export const serve: Command = {
  name: "serve",
  summary: "serve a base model and LoRA adapters over OpenAI-compatible HTTP and NATS",
  usage,
  async run(argv) {
    const { values } = parseFlags(argv, {
      model: { type: "string" },
      name: { type: "string" },
      adapter: { type: "string", multiple: true },
      http: { type: "string" },
      nats: { type: "boolean" },
      "nats-url": { type: "string" },
      template: { type: "string" },
      "max-batch": { type: "string" },
      "max-context": { type: "string" },
      "data-root": { type: "string" },
      "adapter-root": { type: "string" },
      "api-key-file": { type: "string" },
      "base-bf16": { type: "boolean" },
      device: { type: "string" },
      ...natsCredentialFlags,
    });
    // before the model is read or a port opened: a server that cannot compute says so
    const device = deviceFromFlags(values, { cudaEmu: true });
    const modelDir = requireFlag(values, "model");
    const template = values.template as string | undefined;
    if (template !== undefined && !(TEMPLATE_NAMES as readonly string[]).includes(template))
      throw new UsageError(`--template must be one of ${TEMPLATE_NAMES.join(", ")}, got '${template}'`);
    const useNats = values.nats === true || values["nats-url"] !== undefined;
    const http = values.http ?? (useNats ? undefined : "127.0.0.1:8000");
    const apiKey = apiKeyFrom(values);
    const loopback = http !== undefined && /^(127\.|localhost:|\[::1\]:)/.test(http);
    if (http !== undefined && apiKey === undefined && !loopback)
      console.error(
        `serve: warning: HTTP on ${http} without an API key: anyone who reaches it may use and load adapters`,
      );
    const nc = useNats
      ? await connectNats(natsUrl(values["nats-url"]), natsAuth(values, "serve"), "ringtune-serve")
      : undefined;
    const maxBatch = intFlag(values, "max-batch", 32);
    if (maxBatch < 1) throw new UsageError(`--max-batch must be at least 1, got ${maxBatch}`);
    const log = (msg: string) => console.error(`serve: ${msg}`);
    const readRoots = dataRoots(values);
    const adapterRoots = values["adapter-root"] ? parseRootList(values["adapter-root"] as string) : readRoots;
    const served = await ServeProcess.start({
      modelDir,
      name: values.name,
      adapters: (values.adapter ?? []).map((a) => parseAdapterFlag(a)),
      template: template as TemplateName | undefined,
      http: http ? parseHostPort(http) : undefined,
      nats: nc,
      maxBatch,
      apiKey,
      baseBf16: values["base-bf16"] === true,
      device: modelDevice(device),
      adapterRoots,
      // run-time adapters are read under their own roots too
      inputRoots: [...new Set([...readRoots, ...adapterRoots])],
      maxContext: values["max-context"] ? intFlag(values, "max-context") : undefined,
      log,
    });
    for (const line of served.addresses()) console.log(line);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await served.close();
  },
};
