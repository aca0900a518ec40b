// Minimal flag parsing shared by the subcommands: --name value, --flag, and positionals.
import { parseArgs } from "node:util";

export class UsageError extends Error {
  override name = "UsageError";
}

export interface Command {
  name: string; // "dump" or "model init"
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number | void>;
}

type OptionSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean; default?: string | boolean }>;

export function parseFlags<T extends OptionSpec>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function requireFlag(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

export function intFlag(values: Record<string, unknown>, name: string, fallback?: number): number {
  const v = values[name];
  if (v === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${String(v)}'`);
  return n;
}
