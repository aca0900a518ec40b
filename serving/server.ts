// One serving process: the base model loaded once, a batched decoder over it, the adapters named at
// start, and the front doors asked for (HTTP, NATS or both).
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { TemplateName } from "../text/templates/template.js";
import { loadAddon, type BatchedDecoder, type ModelDeviceName } from "../native/js/addon.js";
import { eosTokenIds, readGenerationConfig } from "../hf/generation_config.js";
import { loadModel } from "../hf/hf_model.js";
import { confinedAdapter, resolveAdapterSource, type JobOutputLookup } from "./adapter_source.js";
import { addInputRoots } from "../files/input_files.js";
import { outsideRoots } from "../files/path_roots.js";
import { GenerationEngine } from "./engine.js";
import { startHttp, type HttpFrontDoor } from "./http_server.js";
import { baseTextChoice, ModelCatalog } from "./model_catalog.js";
import { NatsFrontDoor } from "./nats_service.js";
import { describeTextChoice } from "./text_setup.js";
import type { ApiContext } from "./openai_api.js";
import { localServeApi, type ServeApi } from "./serve_api.js";

export interface ServeOptions {
  modelDir: string;
  /** the base's name in requests; default: the model folder's name */
  name?: string;
  adapters: { name: string; source: string }[];
  /**
   * Replaces the template the base's job recorded (and that of adapters whose job recorded none); default:
   * the recorded one, else the model's own, else none
   */
  template?: TemplateName;
  http?: { host: string; port: number };
  nats?: NatsConnection;
  /** how a job id given as an adapter source becomes its output folder */
  lookupJob?: JobOutputLookup;
  maxBatch?: number;
  /** how long an idle server waits for more requests to batch with the first (default 0) */
  batchWindowMs?: number;
  maxContext?: number;
  defaultMaxTokens?: number;
  log?: (msg: string) => void;
  /** what is worth knowing but not wrong, such as each model's chat template and where it came from; default: log */
  info?: (msg: string) => void;
  /**
   * Folders adapters loaded at run time (over HTTP or NATS) may come from; a request naming a folder
   * elsewhere, or a symlink leading out, is refused. Default: the working directory. The adapters named
   * at start are the operator's choice and not confined.
   */
  adapterRoots?: string[];
  /**
   * Folders every file the server reads must lie under: the base, the adapters named at start and those
   * loaded at run time. A path elsewhere is refused naming it and the roots (--data-root), and every file is
   * opened by the O_NOFOLLOW walk from its root (files/walk_beneath.ts), so a link planted inside a model or
   * adapter folder cannot lead a read out. Default: none here (a serving worker's own roots already apply).
   */
  inputRoots?: string[];
  /** the key HTTP clients must send (`Authorization: Bearer KEY`); none: the HTTP door is open */
  apiKey?: string;
  /** a serving worker's id: it also answers on its node subjects, where the coordinator routes requests */
  nodeId?: string;
  /** hold the base in bf16 (half its memory); outputs stay within bf16 rounding of the fp32 base's */
  baseBf16?: boolean;
  /**
   * Where the base, the adapters and every sequence's KV cache live and the decoder computes (default the CPU);
   * "cuda:N" on GPU N, "cuda-emu" on the CUDA backend run by the emulator
   */
  device?: ModelDeviceName;
}

export interface RunningServer {
  ctx: ApiContext;
  api: ServeApi;
  decoder: BatchedDecoder;
  http: HttpFrontDoor | null;
  nats: NatsFrontDoor | null;
  close(): Promise<void>;
}

/** Refuses `dir` (named by `flag`) when it lies outside `roots`, naming both. */
function confinedInput(dir: string, roots: string[] | undefined, flag: string): void {
  const why = roots && outsideRoots(path.resolve(dir), roots, "data", "server");
  if (why) throw new Error(`${flag}: ${why}`);
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  if (o.inputRoots) addInputRoots(o.inputRoots);
  confinedInput(o.modelDir, o.inputRoots, "--model");
  const { model, config } = await loadModel(o.modelDir, { device: o.device ?? "cpu" });
  const decoder = loadAddon().createBatchedDecoder(model, { baseBf16: o.baseBf16 ?? false });
  const catalog = new ModelCatalog(
    {
      name: o.name ?? path.basename(path.resolve(o.modelDir)),
      dir: path.resolve(o.modelDir),
      model,
      eosIds: eosTokenIds(await readGenerationConfig(o.modelDir), config),
      vocabSize: config.native.vocabSize,
      choice: baseTextChoice(o.modelDir, o.template),
    },
    decoder,
  );
  const info = o.info ?? log;
  for (const m of catalog.list()) info(describeTextChoice(m.name, m.choice));
  catalog.onChange((c) => {
    if (c.type === "loaded") info(describeTextChoice(c.model.name, c.model.choice));
  });
  const resolve = (source: string) => resolveAdapterSource(source, o.lookupJob ?? null);
  for (const a of o.adapters) {
    const dir = await resolve(a.source);
    confinedInput(dir, o.inputRoots, `--adapter ${a.name}`);
    await catalog.load(a.name, dir);
  }
  const roots = o.adapterRoots ?? [process.cwd()];
  const resolveRequested = async (source: string) => confinedAdapter(await resolve(source), roots);
  const ctx: ApiContext = {
    catalog,
    engine: new GenerationEngine(decoder, { maxBatch: o.maxBatch ?? 32, batchWindowMs: o.batchWindowMs }),
    maxContext: o.maxContext ?? config.maxPositionEmbeddings,
    defaultMaxTokens: o.defaultMaxTokens ?? 256,
  };
  const api = localServeApi(ctx, resolveRequested);
  const http = o.http ? await startHttp(api, o.http.host, o.http.port, log, o.apiKey) : null;
  const nats = o.nats ? new NatsFrontDoor(o.nats, catalog, api, log, o.nodeId) : null;
  // Started means subscribed at the NATS server: a request published right after, from another connection,
  // may reach this server (its queue group's share of the requests) instead of only the servers before it.
  await o.nats?.flush();
  return {
    ctx,
    api,
    decoder,
    http,
    nats,
    async close() {
      await http?.close();
      await nats?.close();
    },
  };
}
