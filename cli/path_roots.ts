// The coordinator's --data-root and --output-root: flag, else RINGTUNE_DATA_ROOT / RINGTUNE_OUTPUT_ROOT,
// else the working directory. Each may list several folders separated by ':'.
import { parseRootList, type PathRoots } from "../files/path_roots.js";

export function pathRoots(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): PathRoots {
  return { data: dataRoots(values, env), output: rootList(values, "output-root", "RINGTUNE_OUTPUT_ROOT", env) };
}

/** --data-root, else RINGTUNE_DATA_ROOT, else the working directory (a worker's, and `ringtune serve`'s). */
export function dataRoots(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): string[] {
  return rootList(values, "data-root", "RINGTUNE_DATA_ROOT", env);
}

function rootList(values: Record<string, unknown>, flag: string, name: string, env: NodeJS.ProcessEnv): string[] {
  const v = values[flag] ?? env[name];
  return typeof v === "string" && v !== "" ? parseRootList(v) : [process.cwd()];
}
