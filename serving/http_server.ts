// OpenAI-compatible HTTP: /v1/models, /v1/completions, /v1/chat/completions (server-sent events when
// `stream` is set) and vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter. Every failure is an
// OpenAI error object on that request alone; a client that goes away cancels its generation.
import { createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { badRequest, ServeError, toOpenAiError } from "./errors.js";
import type { CallOptions, ServeApi } from "./serve_api.js";

/** Request bodies above this are refused before they are read whole. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** How much of a refused body is read and dropped so that the client gets its 413 before the connection ends. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

type Handler = (body: unknown, call: CallOptions) => Promise<object | undefined> | object;

function readBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
      else if (size - c.length <= MAX_BODY_BYTES) {
        chunks.length = 0;
        // Answered with 413 while the rest is read and dropped (closing at once would reach the client as a
        // reset before it sees the answer); a sender that goes on far past the limit is cut off.
        reject(
          new ServeError(
            413,
            "invalid_request_error",
            `the body is larger than ${MAX_BODY_BYTES} bytes`,
            null,
            "body_too_large",
          ),
        );
      } else if (size > DRAIN_LIMIT_BYTES) req.destroy();
    });
    req.on("end", () => {
      if (size > MAX_BODY_BYTES) return;
      const text = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(text === "" ? {} : JSON.parse(text));
      } catch (err) {
        reject(badRequest(`the body is not valid JSON: ${(err as Error).message}`, null, "bad_json"));
      }
    });
    req.on("error", reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: object): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Whether the request carries `Authorization: Bearer <key>` (compared in constant time). */
function authorized(req: http.IncomingMessage, apiKey: string): boolean {
  const header = req.headers.authorization ?? "";
  const match = /^Bearer (.+)$/.exec(header);
  if (!match) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(match[1]!), digest(apiKey));
}

export interface HttpFrontDoor {
  server: http.Server;
  /** host:port it listens on */
  address: string;
  close(): Promise<void>;
}

type Route = { method: string; handler: Handler };

function apiRoutes(api: ServeApi): Record<string, Route> {
  return {
    "/v1/models": { method: "GET", handler: () => api.models() },
    "/v1/completions": { method: "POST", handler: (b, c) => api.completions(b, c) },
    "/v1/chat/completions": { method: "POST", handler: (b, c) => api.chat(b, c) },
    "/v1/load_lora_adapter": { method: "POST", handler: (b) => api.loadAdapter(b) },
    "/v1/unload_lora_adapter": { method: "POST", handler: (b) => api.unloadAdapter(b) },
  };
}

/** The route a request takes, or the error that refuses it: no valid key, an unknown path, another method. */
function admit(req: http.IncomingMessage, path: string, routes: Record<string, Route>, apiKey?: string): Route {
  if (apiKey !== undefined && !authorized(req, apiKey))
    throw new ServeError(
      401,
      "authentication_error",
      "a valid API key is needed (Authorization: Bearer KEY)",
      null,
      "invalid_api_key",
    );
  const route = routes[path];
  if (!route) throw new ServeError(404, "not_found_error", `no route ${path}`, null, "unknown_url");
  if (req.method !== route.method)
    throw new ServeError(
      405,
      "invalid_request_error",
      `${path} takes ${route.method}, not ${req.method}`,
      null,
      "method_not_allowed",
    );
  return route;
}

/** Server-sent events on `res`: the first chunk sends the headers, so an error before it can still be a status. */
function eventStream(res: http.ServerResponse) {
  let started = false;
  return {
    get started() {
      return started;
    },
    emit(chunk: object) {
      if (!started) {
        started = true;
        res.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-cache",
          connection: "keep-alive",
        });
      }
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    },
  };
}

/** One request answered: a JSON response, or a stream of events ending in [DONE]; a failure as an OpenAI error. */
async function answer(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  routes: Record<string, Route>,
  apiKey: string | undefined,
  log: (msg: string) => void,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://x");
  const aborter = new AbortController();
  // The response closing before it ended: the client went away (or cancelled its stream).
  res.on("close", () => {
    if (!res.writableEnded) aborter.abort();
  });
  const events = eventStream(res);
  try {
    const route = admit(req, url.pathname, routes, apiKey);
    const body = route.method === "POST" ? await readBody(req) : {};
    const wantsStream = typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true;
    const out = await route.handler(body, { signal: aborter.signal, emit: wantsStream ? events.emit : undefined });
    if (wantsStream && events.started) {
      res.end("data: [DONE]\n\n");
      return;
    }
    if (out) sendJson(res, 200, out);
    else res.end();
  } catch (err) {
    const { status, body } = toOpenAiError(err);
    if (status === 413) res.setHeader("connection", "close");
    if (status >= 500) log(`${url.pathname}: ${(err as Error).stack ?? String(err)}`);
    if (events.started) {
      // Headers are gone: the error travels as one more event, then the stream ends.
      res.end(`data: ${JSON.stringify(body)}\n\ndata: [DONE]\n\n`);
    } else sendJson(res, status, body);
  }
}

export async function startHttp(
  api: ServeApi,
  host: string,
  port: number,
  log: (msg: string) => void = () => {},
  /** when set, every request must carry it as `Authorization: Bearer <key>`, as OpenAI's API asks */
  apiKey?: string,
): Promise<HttpFrontDoor> {
  const routes = apiRoutes(api);
  const server = http.createServer((req, res) => {
    void answer(req, res, routes, apiKey, log).catch((err) =>
      log(`http ${req.method} ${req.url}: ${(err as Error).message}`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    server,
    address: `${a.address.includes(":") ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
