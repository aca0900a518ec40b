// Starts a real nats-server (the Debian binary) for tests and benchmarks: a random free port chosen by
// the server itself (no race between picking a port and binding it), JetStream in a temp dir, and a
// stop() that kills it and removes the dir.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface NatsServer {
  url: string;
  port: number;
  /** the nats-server binary it runs */
  bin: string;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would: JetStream's files stay where they are for a restart */
  kill9(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets open and answers nothing, as a hung machine */
  pause(): void;
  /** SIGCONT after pause() */
  resume(): void;
}

export interface NatsServerOptions {
  /** Largest message the server accepts (its default is 1 MiB). */
  maxPayload?: number;
  /** More lines for the server's config file (users and their permissions, say). */
  config?: string[];
  /** Listen on this port instead of one the server picks (a restart keeps its clients' URL). */
  port?: number;
  /** JetStream's folder, kept when the server stops (a restart finds its streams again). */
  storeDir?: string;
}

export class NatsServerMissingError extends Error {
  override name = "NatsServerMissingError";
}

export function findBinary(): string {
  if (process.env.NATS_SERVER_BIN) return process.env.NATS_SERVER_BIN;
  if (existsSync("/usr/sbin/nats-server")) return "/usr/sbin/nats-server";
  const which = spawnSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" });
  const found = which.stdout.trim();
  if (which.status === 0 && found) return found;
  throw new NatsServerMissingError(
    "nats-server not found (looked at /usr/sbin/nats-server and on PATH); `make deps` installs it",
  );
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = findBinary();
  const dir = mkdtempSync(join(tmpdir(), "ringtune-nats-"));
  const config = join(dir, "nats.conf");
  const lines = [
    `listen: "127.0.0.1:${options.port ?? -1}"`, // -1: the server picks a free port and logs it
    `jetstream { store_dir: "${options.storeDir ?? join(dir, "js")}" }`,
  ];
  if (options.maxPayload !== undefined) lines.push(`max_payload: ${options.maxPayload}`);
  lines.push(...(options.config ?? []));
  writeFileSync(config, lines.join("\n") + "\n");

  const child = spawn(bin, ["-c", config], { stdio: ["ignore", "pipe", "pipe"] });
  const stop = () => stopChild(child, dir);
  const kill9 = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGKILL");
      await exited;
    }
  };
  const signal = (name: NodeJS.Signals) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
  };
  try {
    const port = await waitForReady(child);
    await probe(port);
    return {
      url: `nats://127.0.0.1:${port}`,
      port,
      bin,
      stop,
      kill9,
      pause: signal("SIGSTOP"),
      resume: signal("SIGCONT"),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Resolves with the client port once the server logs that it is ready; rejects if it exits first. */
function waitForReady(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let log = "";
    let port: number | undefined;
    const onData = (b: Buffer) => {
      log += b.toString();
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) port = Number(m[1]);
      if (port !== undefined && log.includes("Server is ready")) {
        child.stderr!.off("data", onData);
        child.stdout!.off("data", onData);
        child.off("exit", onExit);
        resolve(port);
      }
    };
    const onExit = (code: number | null) =>
      reject(new Error(`nats-server exited (code ${code}) before it was ready:\n${log}`));
    child.stderr!.on("data", onData);
    child.stdout!.on("data", onData);
    child.once("exit", onExit);
    child.once("error", reject);
  });
}

function probe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, "127.0.0.1", () => {
      s.end();
      resolve();
    });
    s.once("error", reject);
  });
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  // Keep draining its output so a chatty server never blocks on a full pipe while stopping.
  child.stdout?.resume();
  child.stderr?.resume();
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGCONT"); // a paused server would hold SIGTERM pending for good
    child.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
}
