// Flags shared by the commands that serve: `ringtune serve`, and the coordinator and workers of a serving cluster.
import { readFileSync } from "node:fs";
import { UsageError } from "../args.js";

/** The HTTP API key: --api-key-file (its first line), else $RINGTUNE_API_KEY; never a flag's own value. */
export function apiKeyFrom(values: Record<string, unknown>): string | undefined {
  const file = values["api-key-file"] as string | undefined;
  if (file !== undefined) {
    let key: string;
    try {
      key = readFileSync(file, "utf8").split("\n")[0]!.trim();
    } catch (err) {
      throw new UsageError(`--api-key-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (key === "") throw new UsageError(`--api-key-file ${file}: the file is empty`);
    return key;
  }
  const env = process.env.RINGTUNE_API_KEY;
  return env && env.trim() !== "" ? env.trim() : undefined;
}

/** NAME=DIR or NAME=JOB_ID, as --adapter (or another flag, named in the error) takes it. */
export function parseAdapterFlag(spec: string, flag = "--adapter"): { name: string; source: string } {
  const eq = spec.indexOf("=");
  if (eq <= 0 || eq === spec.length - 1) throw new UsageError(`${flag} must be NAME=DIR or NAME=JOB_ID, got '${spec}'`);
  return { name: spec.slice(0, eq), source: spec.slice(eq + 1) };
}

/** HOST:PORT of an HTTP door (`[::1]:8000` for IPv6), as --http (or another flag, named in the error) takes it. */
export function parseHostPort(text: string, flag = "--http"): { host: string; port: number } {
  const at = text.lastIndexOf(":");
  const digits = text.slice(at + 1);
  const port = Number(digits);
  // Digits only: Number("") is 0, which would make "host:" a request for any free port.
  if (at <= 0 || !/^\d{1,5}$/.test(digits) || port > 65535)
    throw new UsageError(`${flag} must be HOST:PORT, got '${text}'`);
  return { host: text.slice(0, at).replace(/^\[|\]$/g, ""), port };
}
