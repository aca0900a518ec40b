// The JSON log of a long-running process (coordinator, worker): pino on stderr, its level from LOG_LEVEL,
// with fields that name the process so lines from many processes can be merged and filtered. The human
// progress of a command stays on the CLI's stdout; this log is for machines and operators.
import { pino, type Logger } from "pino";

const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The level LOG_LEVEL names (default info); any other value is an error that lists the accepted ones. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const level = (env.LOG_LEVEL ?? "info").trim().toLowerCase();
  if (!(LEVELS as readonly string[]).includes(level))
    throw new Error(`LOG_LEVEL: '${env.LOG_LEVEL}' is not a log level (one of ${LEVELS.join(", ")})`);
  return level;
}

/** `bindings` go on every line: `{ process: "worker", worker: "w0" }` lets a reader pick one worker's lines. */
export function processLogger(name: string, bindings: Record<string, string> = {}): Logger {
  return pino({ name, level: logLevelFromEnv(), base: { pid: process.pid, ...bindings } }, pino.destination(2));
}
