// Where jobs may read and write: every path a spec names must lie under one of the data roots (inputs) or
// output roots (outputs, caches; inputs too, so a job can start from an earlier job's checkpoint or model).
// The coordinator checks a spec's paths at intake; a worker checks the paths of each command again, so a
// worker never reads or writes outside its own roots whoever sends the command. A path is judged twice: as written after resolving `..`, and as the file system
// resolves it (symlinks followed, for an output the deepest folder that exists yet), so neither `..` nor a
// symlink can lead out. Refusals name the key and the roots, never anything read from the file.
import { realpathSync } from "node:fs";
import path from "node:path";

export interface PathRoots {
  /** folders job inputs may come from */
  data: string[];
  /** folders job outputs, checkpoints and data caches may go to */
  output: string[];
}

/** A list of roots from a flag or variable: folders separated by ':' (as PATH), each made absolute. */
export function parseRootList(value: string, cwd = process.cwd()): string[] {
  return value
    .split(":")
    .filter((p) => p !== "")
    .map((p) => path.resolve(cwd, p));
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** The path as the file system resolves it; for a path not there yet, its deepest existing folder's. */
function realOrNearest(p: string): string {
  let probe = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(realpathSync(probe), ...rest.reverse());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      const parent = path.dirname(probe);
      if (parent === probe) return p;
      rest.push(path.basename(probe));
      probe = parent;
    }
  }
}

function realRoot(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return path.resolve(root);
  }
}

/**
 * Why `file` (absolute, already resolved against the job's folder) may not be used for `key`, or
 * undefined when it lies under one of `roots`, both as written and once symlinks are followed.
 */
export function outsideRoots(
  file: string,
  roots: string[],
  kind: "data" | "output",
  holder: "coordinator" | "worker" = "coordinator",
): string | undefined {
  const list = [...new Set(roots)].join(", ");
  const flag = kind === "data" ? "--data-root" : "--output-root";
  const normal = path.resolve(file);
  if (!roots.some((r) => inside(path.resolve(r), normal)))
    return `'${file}' is outside the ${holder}'s ${kind} root(s) ${list} (${flag})`;
  let real: string;
  try {
    real = realOrNearest(normal);
  } catch (err) {
    return `'${file}' cannot be checked (${(err as NodeJS.ErrnoException).code ?? "error"})`;
  }
  if (!roots.some((r) => inside(realRoot(r), real)))
    return `'${file}' leads out of the ${holder}'s ${kind} root(s) ${list} through a symbolic link`;
  return undefined;
}
