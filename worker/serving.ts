// A worker started to serve a base model: it holds the base (and the adapters loaded on it) beside its
// training role, answers the requests the coordinator routes to it on its node subjects, and says in
// each heartbeat what it serves and how busy it is, which is what the coordinator routes by.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { ServingStatus } from "../proto/mod.js";
import type { ModelDeviceName } from "../native/js/addon.js";
import { startServer, type RunningServer } from "../serving/server.js";
import { jobOutputsOver } from "../serving/adapter_source.js";

export interface WorkerServeOptions {
  /** the base model's HF folder */
  modelDir: string;
  /** its name in requests; default: the folder's name */
  name?: string;
  /** adapters served from the start */
  adapters?: { name: string; source: string }[];
  /** folders adapters loaded at run time may come from (besides job outputs looked up by id) */
  adapterRoots?: string[];
  /** hold the base in bf16: half its memory, outputs within bf16 rounding of the fp32 base's */
  baseBf16?: boolean;
  /** where the served model computes: the worker's own model device */
  device?: ModelDeviceName;
}

export class WorkerServing {
  private constructor(readonly server: RunningServer) {}

  static async start(nc: NatsConnection, workerId: string, o: WorkerServeOptions, log: Logger): Promise<WorkerServing> {
    const server = await startServer({
      modelDir: o.modelDir,
      name: o.name,
      adapters: o.adapters ?? [],
      nats: nc,
      nodeId: workerId,
      lookupJob: jobOutputsOver(nc),
      adapterRoots: o.adapterRoots,
      baseBf16: o.baseBf16,
      device: o.device,
      log: (msg) => log.warn(msg),
      info: (msg) => log.info(msg),
    });
    log.info(
      { models: server.ctx.catalog.list().map((m) => m.name), backend: server.ctx.catalog.base.model.backendName() },
      "serving",
    );
    return new WorkerServing(server);
  }

  status(): ServingStatus {
    const { catalog, engine } = this.server.ctx;
    const load = engine.load;
    return {
      base: catalog.base.name,
      models: catalog.list().map((m) => m.name),
      running: load.live,
      waiting: load.waiting,
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
