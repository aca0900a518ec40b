// The coordinator's --data-root and --output-root: flag, else RINGTUNE_DATA_ROOT / RINGTUNE_OUTPUT_ROOT,
// else the working directory. Each may list several folders separated by ':'.
import { parseRootList, type PathRoots } from "../files/path_roots.js";

export function pathRoots(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): PathRoots {
  const pick = (flag: string, name: string) => {
    const v = values[flag] ?? env[name];
    return typeof v === "string" && v !== "" ? parseRootList(v) : [process.cwd()];
  };
  return { data: pick("data-root", "RINGTUNE_DATA_ROOT"), output: pick("output-root", "RINGTUNE_OUTPUT_ROOT") };
}
