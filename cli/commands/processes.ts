// `ringtune coordinator` and `ringtune worker`: the long-running cluster processes (make cluster-up starts them).
import os from "node:os";
import { Coordinator, DEFAULT_LEASE_TTL_MS, type CoordinatorOptions } from "../../coordinator/main.js";
import { parseRootList } from "../../files/path_roots.js";
import { apiKeyFrom, parseAdapterFlag, parseHostPort } from "./serve_flags.js";
import { Worker, type WorkerServeOptions } from "../../worker/main.js";
import { parseBytes } from "../../spec/byte_units.js";
import { parseFlags, UsageError, type Command } from "../args.js";
import { natsUrl } from "../nats_connect.js";
import { deviceFromFlags } from "../device_flag.js";
import { DEVICE_FLAG_HELP } from "../../native/js/compute_device.js";
import { NATS_CREDENTIAL_USAGE, natsAuth, natsCredentialFlags } from "../nats_credentials.js";
import { pathRoots } from "../path_roots.js";
import { parseListenAddress, type ListenAddress } from "../../observe/http_listen.js";
import { processLogger } from "../../observe/logger.js";

/** The host a browser on this machine reaches a server at: loopback for "every interface". */
function browsableHost(flag: string): string {
  const host = parseListenAddress(flag).host;
  return !host || host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
}

function httpFlag(value: unknown): ListenAddress | undefined {
  if (value === undefined) return undefined;
  try {
    return parseListenAddress(value as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The coordinator's routed serving door: --serve-http HOST:PORT and the key its clients must send. */
function serveHttpFlag(values: Record<string, unknown>): CoordinatorOptions["serveHttp"] {
  const text = values["serve-http"] as string | undefined;
  if (text === undefined) return undefined;
  return { ...parseHostPort(text, "--serve-http"), apiKey: apiKeyFrom(values) };
}

/** A worker's serving role: --serve DIR and what goes with it. */
function serveFlags(values: Record<string, unknown>): WorkerServeOptions | undefined {
  const modelDir = values.serve as string | undefined;
  const stray = ["serve-name", "serve-adapter", "adapter-root", "serve-bf16"].find((f) => values[f] !== undefined);
  if (modelDir === undefined) {
    if (stray) throw new UsageError(`--${stray} needs --serve DIR`);
    return undefined;
  }
  return {
    modelDir,
    name: values["serve-name"] as string | undefined,
    adapters: ((values["serve-adapter"] as string[] | undefined) ?? []).map((a) =>
      parseAdapterFlag(a, "--serve-adapter"),
    ),
    adapterRoots: values["adapter-root"] ? parseRootList(values["adapter-root"] as string) : undefined,
    baseBf16: values["serve-bf16"] === true,
  };
}

/**
 * A promise rejected with nobody waiting on it (a reply that failed after its request was forgotten, say)
 * is logged and the process goes on: Node's default would end a coordinator that serves everyone over one
 * stray error.
 */
function containUnhandledRejections(name: string): void {
  const log = processLogger(name);
  process.on("unhandledRejection", (reason) => log.error({ err: reason }, "unhandled rejection (contained)"));
}

/** Runs until SIGINT/SIGTERM, then closes cleanly. */
function untilSignal(close: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    const stop = () => {
      void close().finally(() => resolve(0));
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

export const coordinatorCommand: Command = {
  name: "coordinator",
  summary: "run the coordinator: takes jobs over NATS and schedules them on workers",
  usage:
    "usage: ringtune coordinator [--nats URL] [--lease-ttl SECONDS] [--data-root DIR] [--output-root DIR] [--http :PORT]\n" +
    "  --nats         default: $NATS_URL or nats://127.0.0.1:4222\n" +
    "  --lease-ttl    how long a coordinator that stopped renewing its lease keeps it before a standby takes over\n" +
    `                 (default ${DEFAULT_LEASE_TTL_MS / 1000}); a second coordinator waits as standby\n` +
    "  --data-root    jobs read their inputs only under DIR (default: the working directory; RINGTUNE_DATA_ROOT)\n" +
    "  --output-root  jobs write outputs and caches only under DIR (default: the working directory; RINGTUNE_OUTPUT_ROOT)\n" +
    "  --http         serve the dashboard (/) and Prometheus metrics (/metrics) on this address (:8080, 127.0.0.1:8080)\n" +
    "  --serve-http   an OpenAI-compatible API (HOST:PORT) that routes each request to a worker serving its model\n" +
    "                 (workers started with --serve); HTTP clients send --api-key-file's key (or $RINGTUNE_API_KEY)\n" +
    "  logs: JSON lines on stderr, level from LOG_LEVEL (default info)\n" +
    NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, {
      nats: { type: "string" },
      "lease-ttl": { type: "string" },
      "data-root": { type: "string" },
      "output-root": { type: "string" },
      http: { type: "string" },
      "serve-http": { type: "string" },
      "api-key-file": { type: "string" },
      ...natsCredentialFlags,
    });
    const ttl = values["lease-ttl"] === undefined ? undefined : Number(values["lease-ttl"]);
    if (ttl !== undefined && !(ttl >= 1 && ttl <= 600))
      throw new UsageError(`--lease-ttl: expected seconds from 1 to 600, got '${values["lease-ttl"] as string}'`);
    containUnhandledRejections("coordinator");
    const auth = natsAuth(values, "coordinator", process.env, (line) => processLogger("coordinator").warn(line));
    const c = await Coordinator.start({
      natsUrl: natsUrl(values.nats as string | undefined),
      auth: auth.options,
      roots: pathRoots(values),
      http: httpFlag(values.http),
      serveHttp: serveHttpFlag(values),
      leaseTtlMs: ttl === undefined ? undefined : ttl * 1000,
      // Another coordinator is active now: this one must not act on anything more, whatever is still pending.
      onLeaseLost: (reason) => {
        console.error(`ringtune coordinator: ${reason}; exiting`);
        process.exit(3);
      },
    });
    if (c.http) console.log(`dashboard: http://${browsableHost(values.http as string)}:${c.http.port}/`);
    if (c.serveHttp) console.log(`serving (routed to workers) on http://${c.serveHttp.address}/v1`);
    return untilSignal(() => c.close());
  },
};

export const workerCommand: Command = {
  name: "worker",
  summary: "run a worker: trains the jobs the coordinator assigns it",
  usage:
    `usage: ringtune worker [--nats URL] [--id ID] [${DEVICE_FLAG_HELP}] [--memory SIZE] [--listen-host HOST] [--advertise-host HOST] [--http :PORT]\n` +
    "       [--serve DIR [--serve-name NAME] [--serve-adapter NAME=DIR|JOB_ID ...] [--adapter-root DIR[:DIR...]] [--serve-bf16]]\n" +
    "       [--data-root DIR] [--output-root DIR]\n" +
    "  --id      default: host-pid\n" +
    "  --memory  usable memory to report (8GiB, 512MiB; default: the machine's RAM): jobs that need more are refused\n" +
    "  --http    serve Prometheus metrics (/metrics) on this address (:9464)\n" +
    "  --serve   also serve the base model in DIR (as --serve-name, default the folder's name) with its adapters to the\n" +
    "            requests the coordinator's --serve-http routes here; adapters load at run time from job outputs (by\n" +
    "            job id) or from folders under --adapter-root; --serve-bf16 holds the base in bf16 (half the memory)\n" +
    "  --data-root DIR, --output-root DIR  commands read only under these (both) and write only under the\n" +
    "            output roots (default: the working directory; RINGTUNE_DATA_ROOT, RINGTUNE_OUTPUT_ROOT)\n" +
    "  logs: JSON lines on stderr, level from LOG_LEVEL (default info)\n" +
    NATS_CREDENTIAL_USAGE,
  async run(argv) {
    const { values } = parseFlags(argv, {
      nats: { type: "string" },
      id: { type: "string" },
      device: { type: "string" },
      memory: { type: "string" },
      "listen-host": { type: "string" },
      "advertise-host": { type: "string" },
      "data-root": { type: "string" },
      "output-root": { type: "string" },
      ...natsCredentialFlags,
      http: { type: "string" },
      serve: { type: "string" },
      "serve-name": { type: "string" },
      "serve-adapter": { type: "string", multiple: true },
      "adapter-root": { type: "string" },
      "serve-bf16": { type: "boolean" },
    });
    const id = (values.id as string | undefined) ?? `${os.hostname().replace(/[^A-Za-z0-9_-]/g, "-")}-${process.pid}`;
    // A process that logs JSON says everything in JSON, the warning about running without authentication too.
    const compute = deviceFromFlags(values, { cudaEmu: true }); // before anything else: a worker that cannot compute says so at once
    containUnhandledRejections("worker");
    // each worker its own NATS user: a local cluster's credentials for this worker are in worker-<id>.env
    const auth = natsAuth(values, `worker-${id}`, process.env, (line) =>
      processLogger("worker", { worker: id }).warn(line),
    );
    let memoryBytes: number | undefined;
    try {
      memoryBytes = values.memory === undefined ? undefined : parseBytes(values.memory as string, "--memory");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const w = await Worker.start({
      natsUrl: natsUrl(values.nats as string | undefined),
      auth: auth.options,
      id,
      listenHost: values["listen-host"] as string | undefined,
      advertiseHost: values["advertise-host"] as string | undefined,
      memoryBytes,
      compute,
      http: httpFlag(values.http),
      serve: serveFlags(values),
      roots: pathRoots(values),
    });
    return untilSignal(() => w.close());
  },
};
