// A small HTTP server for a cluster process: `/metrics` in the Prometheus text format for every process,
// plus whatever routes the process adds (the coordinator's dashboard). node:http only: nothing here is
// worth a framework.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import type { ListenAddress } from "./http_listen.js";

/** Answers the request and returns true, or returns false to let the next route try. */
export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface RunningHttpServer {
  server: Server;
  /** the bound port (the one asked for, or the one picked for port 0) */
  port: number;
  close(): Promise<void>;
}

export function metricsRoute(registry: Registry): Route {
  return async (_req, res, url) => {
    if (url.pathname !== "/metrics") return false;
    const body = await registry.metrics();
    res.writeHead(200, { "Content-Type": registry.contentType });
    res.end(body);
    return true;
  };
}

/** The largest request body this server lets through (its routes read none). */
const MAX_BODY_BYTES = 64 * 1024;

function carriesLargeBody(req: IncomingMessage): boolean {
  const length = Number(req.headers["content-length"] ?? 0);
  return length > MAX_BODY_BYTES || (req.headers["transfer-encoding"] ?? "").includes("chunked");
}

export async function startHttpServer(listen: ListenAddress, routes: Route[], log: Logger): Promise<RunningHttpServer> {
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      if (carriesLargeBody(req)) {
        // no route here reads a body: one of any size is refused, and dropped as it arrives
        res.writeHead(413, { "Content-Type": "text/plain", connection: "close" });
        res.end(`a request to this server carries no body over ${MAX_BODY_BYTES} bytes\n`);
        req.resume();
        return;
      }
      try {
        for (const route of routes) if (await route(req, res, url)) return;
        res.writeHead(404, { "Content-Type": "text/plain" });
        res.end(`not found: ${url.pathname}\n`);
      } catch (err) {
        log.error({ err, path: url.pathname }, "http request failed");
        if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
        res.end(`error: ${(err as Error).message}\n`);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(new Error(`--http: cannot listen on ${listen.host ?? ""}:${listen.port}: ${err.message}`)),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: listen.host ?? "*" }, "http server listening");
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections(); // open event streams would otherwise hold close() forever
        server.close(() => resolve());
      }),
  };
}
