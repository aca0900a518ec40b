// Where jobs may read and write: every path a spec names must lie under one of the data roots (inputs) or
// output roots (outputs, caches; inputs too, so a job can start from an earlier job's checkpoint or model).
// The coordinator checks a spec's paths at intake; a worker checks the paths of each command again, so a
// worker never reads or writes outside its own roots whoever sends the command. A path is judged twice: as written after resolving `..`, and as the file system
// resolves it (symlinks followed, for an output the deepest folder that exists yet), so neither `..` nor a
// symlink can lead out. Refusals name the key and the roots, never anything read from the file.
import { lstatSync, readlinkSync, realpathSync } from "node:fs";
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

/** Symbolic links followed before a path is refused as a loop (the kernel's own limit). */
const MAX_LINKS = 40;

/**
 * The path as the file system resolves it, links followed one component at a time (a path not there yet:
 * its deepest existing folder's, the rest appended), or "out" as soon as a link points outside `allowed`.
 * Nothing past a link that leads out is looked at, so the answer is the same whether the outside target
 * exists or not, and no refusal can tell an outsider what lies outside the roots.
 */
function resolveInside(p: string, allowed: (q: string) => boolean): string | "out" {
  let pending = p.split(path.sep).filter((c) => c !== "");
  let done = path.parse(p).root;
  let links = 0;
  while (pending.length > 0) {
    // Components of a link's target are taken as the kernel takes them: ".." from the folder reached so far.
    if (pending[0] === "." || pending[0] === "..") {
      if (pending[0] === "..") done = path.dirname(done);
      pending = pending.slice(1);
      continue;
    }
    const next = path.join(done, pending[0]!);
    let isLink: boolean;
    try {
      isLink = lstatSync(next).isSymbolicLink();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      return path.join(done, ...pending);
    }
    if (!isLink) {
      done = next;
      pending = pending.slice(1);
      continue;
    }
    if (++links > MAX_LINKS) throw Object.assign(new Error("too many symbolic links"), { code: "ELOOP" });
    const target = readlinkSync(next);
    if (!allowed(path.resolve(done, target))) return "out";
    pending = [...target.split(path.sep).filter((c) => c !== ""), ...pending.slice(1)];
    if (path.isAbsolute(target)) done = path.parse(target).root;
  }
  return done;
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
  holder: "coordinator" | "worker" | "server" = "coordinator",
): string | undefined {
  const list = [...new Set(roots)].join(", ");
  const flag = kind === "data" ? "--data-root" : "--output-root";
  const normal = path.resolve(file);
  if (!roots.some((r) => inside(path.resolve(r), normal)))
    return `'${file}' is outside the ${holder}'s ${kind} root(s) ${list} (${flag})`;
  const real = roots.map(realRoot);
  const all = [...roots.map((r) => path.resolve(r)), ...real];
  // A link may lead into a root, or to a folder on the way to one (a root reached through a linked /tmp).
  const allowed = (q: string) => all.some((r) => inside(r, q) || inside(q, r));
  let resolved: string;
  try {
    resolved = resolveInside(normal, allowed);
  } catch (err) {
    return `'${file}' cannot be checked (${(err as NodeJS.ErrnoException).code ?? "error"})`;
  }
  if (resolved === "out" || !real.some((r) => inside(r, resolved)))
    return `'${file}' leads out of the ${holder}'s ${kind} root(s) ${list} through a symbolic link`;
  return undefined;
}
