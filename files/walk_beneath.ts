// The one way a job's files are reached, for reading and for writing: from the root they lie under, one
// component at a time, each opened relative to the folder before it with O_NOFOLLOW. Node has no openat; the
// walk names a child as /proc/self/fd/N/NAME, which the kernel looks up in the folder N is open on, whatever
// path led there. What is held at the end is what the walk reached, so a component swapped afterwards (a file
// or a parent replaced by a link to elsewhere) cannot redirect the read or the write made through it.
//
// A symbolic link met on the way is never followed by the kernel. A write walk refuses it. A read walk
// follows it itself when its target, taken as text from the folder reached so far (a real folder: every
// component up to it was opened without following anything), lies under one of the roots: the walk starts
// again from that root (model caches link their files to blobs beside them). A target outside the roots is
// refused from the link's text alone, so a refusal never tells whether anything outside exists.
//
// The last component of a read is opened with O_NONBLOCK and checked by type on the descriptor: a FIFO can
// neither hang the open nor be read, and devices and sockets are refused by name.
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, type Stats } from "node:fs";
import path from "node:path";
import { OutputLinkError } from "./output_files.js";

const FOLDER = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Symbolic links a read walk follows before it gives up (the kernel's own limit). */
const MAX_LINKS = 40;

/** A path that lies under none of the roots, as written: refused before anything is opened. */
export class OutsideRootsError extends Error {
  override name = "OutsideRootsError";
}

/** A read that cannot go ahead: a link leading out, a FIFO, a device, a socket, a folder where a file is due. */
export class InputFileError extends Error {
  override name = "InputFileError";
  constructor(
    message: string,
    options?: ErrorOptions & {
      /** what was found instead of a regular file ("a FIFO", "a folder"), when that is why */
      found?: string;
    },
  ) {
    super(message, options);
    this.found = options?.found;
  }
  readonly found: string | undefined;
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isSocket()) return "a socket";
  if (st.isDirectory()) return "a folder";
  return "not a regular file";
}

/** Why the file type of `st` cannot be read as data, or undefined for a regular file. */
export function notRegular(st: Stats): string | undefined {
  return st.isFile() ? undefined : `is ${kindOf(st)}; inputs must be regular files`;
}

/** The refusal of `file`, whose `shown` part ("": the file itself) is not a regular file. */
export function typeError(file: string, shown: string, st: Stats, cause?: unknown): InputFileError {
  return new InputFileError(`${file}: ${shown ? `${shown} ` : ""}${notRegular(st)}`, { cause, found: kindOf(st) });
}

export function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** The deepest of `roots` that `p` lies under as written, if any. */
function rootOf(p: string, roots: string[]): string | undefined {
  return roots.filter((r) => inside(r, p)).sort((a, b) => b.length - a.length)[0];
}

function components(rel: string): string[] {
  return rel.split(path.sep).filter((c) => c !== "" && c !== ".");
}

export interface WalkOptions {
  /** what the last component must be: a regular file (read), or a folder */
  want: "file" | "folder";
  /** read walks follow links that stay under the roots; write walks refuse every link */
  links: "follow-inside" | "refuse";
  /** folders missing on the way (and at the end, for a folder) are made; write walks only */
  create?: boolean;
  /** the roots' name in refusals: "input", "output" */
  label: string;
}

/**
 * A descriptor for `file` (absolute, or resolved against the working folder), reached from the deepest root
 * of `roots` it lies under as described above; the caller closes it. `roots` are absolute; list a root both
 * as named and as the file system resolves it when paths may reach the caller in either form.
 */
export function openBeneath(file: string, roots: string[], opts: WalkOptions): number {
  const target = path.resolve(file);
  let root = rootOf(target, roots);
  if (!root) throw new OutsideRootsError(`${file}: outside the ${opts.label} root(s) ${roots.join(":")}`);
  let pending = components(path.relative(root, target));
  let reached: string[] = [];
  let links = 0;
  // the root is the operator's setting and is opened as named
  let fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    while (pending.length > 0) {
      const name = pending[0]!;
      const last = pending.length === 1;
      const at = `/proc/self/fd/${fd}/${name}`;
      const shown = path.join(...reached, name);
      let child: number;
      try {
        child = openSync(at, last && opts.want === "file" ? FILE : FOLDER);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT" && opts.create && (!last || opts.want === "folder")) {
          // mkdir never follows a link at its last component: one planted meanwhile makes it fail (EEXIST)
          mkdirSync(at, 0o755);
          child = openSync(at, FOLDER);
        } else {
          // lstat of the name in the held folder: the link itself, never its target
          let st: Stats | undefined;
          try {
            st = lstatSync(at);
          } catch {
            st = undefined;
          }
          if (!st?.isSymbolicLink()) {
            if (st && !st.isDirectory() && !(last && st.isFile())) throw typeError(file, shown, st, err);
            throw err;
          }
          if (opts.links === "refuse") throw new OutputLinkError(path.join(root, shown), { cause: err });
          if (++links > MAX_LINKS)
            throw new InputFileError(`${file}: more than ${MAX_LINKS} symbolic links on the way`, { cause: err });
          const dest = path.resolve(root, ...reached, readlinkSync(at));
          const next = rootOf(dest, roots);
          if (!next)
            throw new InputFileError(
              `${file}: leads out of the ${opts.label} roots through the symbolic link ${shown} ` +
                `(it changed after it was checked, or was never allowed)`,
            );
          closeSync(fd);
          fd = -1;
          fd = openSync(next, constants.O_RDONLY | constants.O_DIRECTORY);
          root = next;
          pending = [...components(path.relative(next, dest)), ...pending.slice(1)];
          reached = [];
          continue;
        }
      }
      closeSync(fd);
      fd = child;
      reached.push(name);
      pending = pending.slice(1);
    }
    if (opts.want === "file") {
      const st = fstatSync(fd);
      if (!st.isFile()) throw typeError(file, "", st);
    }
    return fd;
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    throw err;
  }
}
