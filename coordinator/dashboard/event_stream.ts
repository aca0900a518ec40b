// Server-sent events for the dashboard: every client gets each job record as it is written and each
// metrics.jsonl line as it is appended (the same numbers the job record and the file keep), plus the
// workers' state once a second. A client that connects late loads the history over the JSON routes.
import type { IncomingMessage, ServerResponse } from "node:http";

export type DashboardEvent = "job" | "metric" | "workers";

export class EventStream {
  private readonly clients = new Set<ServerResponse>();

  /** Keeps the response open as an event stream until the client goes away. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
    });
    res.write(": ringtune dashboard events\n\n");
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    req.on("close", drop);
    res.on("close", drop);
    res.on("error", drop); // a client gone mid-write must never bring down the coordinator
  }

  get size(): number {
    return this.clients.size;
  }

  send(event: DashboardEvent, data: unknown): void {
    if (this.clients.size === 0) return;
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of this.clients) if (!res.destroyed && !res.writableEnded) res.write(frame);
  }
}
