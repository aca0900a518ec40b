// The `ringtune serve` process: one base model and its adapters behind the front doors asked for (HTTP,
// NATS or both), standing alone rather than hosted by a worker. A job id named as an adapter is looked up in
// the cluster's job records over the process's NATS connection.
import type { NatsConnection } from "@nats-io/transport-node";
import { serveSubjects } from "../proto/serve_subjects.js";
import { jobOutputsOver } from "../serving/adapter_source.js";
import { startServer, type RunningServer, type ServeOptions } from "../serving/server.js";

export interface ServeProcessOptions extends Omit<ServeOptions, "lookupJob" | "nodeId"> {
  /** the process's connection, if it answers on NATS or looks up job ids; closing the process drains it */
  nats?: NatsConnection;
}

export class ServeProcess {
  private constructor(
    readonly server: RunningServer,
    private readonly nc: NatsConnection | undefined,
  ) {}

  static async start(o: ServeProcessOptions): Promise<ServeProcess> {
    const nc = o.nats;
    const server = await startServer({
      ...o,
      lookupJob: nc ? jobOutputsOver(nc) : undefined,
    });
    return new ServeProcess(server, nc);
  }

  /**
   * One line for each front door: where the models it serves are reached, and the backend that computes them
   * (the base, the adapters and the KV caches live there: a user sees that an emulated device is slow).
   */
  addresses(): string[] {
    const names = this.server.ctx.catalog.list().map((m) => m.name);
    const on = `computed on ${this.server.ctx.catalog.base.model.backendName()}`;
    const lines: string[] = [];
    if (this.server.http) lines.push(`serving ${names.join(", ")} on http://${this.server.http.address}/v1 (${on})`);
    if (this.server.nats)
      lines.push(`serving ${names.join(", ")} on NATS ${serveSubjects.chat(names[0]!)} (and .completions) (${on})`);
    return lines;
  }

  async close(): Promise<void> {
    await this.server.close();
    await this.nc?.drain();
  }
}
