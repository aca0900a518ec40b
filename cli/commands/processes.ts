// `ringtune coordinator` and `ringtune worker`: the long-running cluster processes (make cluster-up starts them).
import os from "node:os";
import { Coordinator } from "../../coordinator/main.js";
import { Worker } from "../../worker/main.js";
import { parseBytes } from "../../coordinator/job_spec/byte_units.js";
import { parseFlags, UsageError, type Command } from "../args.js";
import { natsUrl } from "../nats_connect.js";
import { parseListenAddress, type ListenAddress } from "../../observe/http_listen.js";

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
    "usage: ringtune coordinator [--nats URL] [--http :PORT]\n" +
    "  --nats  default: $NATS_URL or nats://127.0.0.1:4222\n" +
    "  --http  serve the dashboard (/) and Prometheus metrics (/metrics) on this address (:8080, 127.0.0.1:8080)\n" +
    "  logs: JSON lines on stderr, level from LOG_LEVEL (default info)",
  async run(argv) {
    const { values } = parseFlags(argv, { nats: { type: "string" }, http: { type: "string" } });
    const c = await Coordinator.start({
      natsUrl: natsUrl(values.nats as string | undefined),
      http: httpFlag(values.http),
    });
    if (c.http) console.log(`dashboard: http://${browsableHost(values.http as string)}:${c.http.port}/`);
    return untilSignal(() => c.close());
  },
};

export const workerCommand: Command = {
  name: "worker",
  summary: "run a worker: trains the jobs the coordinator assigns it",
  usage:
    "usage: ringtune worker [--nats URL] [--id ID] [--device cpu] [--memory SIZE] [--listen-host HOST] [--advertise-host HOST] [--http :PORT]\n" +
    "  --id      default: host-pid\n" +
    "  --memory  usable memory to report (8GiB, 512MiB; default: the machine's RAM): jobs that need more are refused\n" +
    "  --http    serve Prometheus metrics (/metrics) on this address (:9464)\n" +
    "  logs: JSON lines on stderr, level from LOG_LEVEL (default info)",
  async run(argv) {
    const { values } = parseFlags(argv, {
      nats: { type: "string" },
      id: { type: "string" },
      device: { type: "string" },
      memory: { type: "string" },
      "listen-host": { type: "string" },
      "advertise-host": { type: "string" },
      http: { type: "string" },
    });
    const device = (values.device as string | undefined) ?? "cpu";
    if (device !== "cpu") {
      // The CUDA backend is its own piece of work; until it lands a GPU node runs CPU workers.
      throw new UsageError(
        `--device ${device}: this build has only the CPU backend; start CPU workers (make cluster-up WORKER_DEVICE=cpu)`,
      );
    }
    let memoryBytes: number | undefined;
    try {
      memoryBytes = values.memory === undefined ? undefined : parseBytes(values.memory as string, "--memory");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const id = (values.id as string | undefined) ?? `${os.hostname().replace(/[^A-Za-z0-9_-]/g, "-")}-${process.pid}`;
    const w = await Worker.start({
      natsUrl: natsUrl(values.nats as string | undefined),
      id,
      listenHost: values["listen-host"] as string | undefined,
      advertiseHost: values["advertise-host"] as string | undefined,
      memoryBytes,
      http: httpFlag(values.http),
    });
    return untilSignal(() => w.close());
  },
};
