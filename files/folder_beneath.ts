// An output folder reached from its root one component at a time, each opened relative to the one before and
// never through a symbolic link: the openat(O_NOFOLLOW) walk, which Node lacks, done through the descriptors'
// /proc/self/fd/N entries (the kernel looks NAME up in the folder N is, whatever path led there). What is
// held at the end is the folder the walk reached: a swap of any component afterwards (a parent renamed and
// replaced by a link to elsewhere) cannot redirect a write made through it. The root itself is the
// operator's setting and is opened as named.
import { closeSync, constants, mkdirSync, openSync, realpathSync } from "node:fs";
import path from "node:path";
import { HeldFolder } from "./held_folder.js";
import { OutputLinkError } from "./output_files.js";

const FOLDER = constants.O_RDONLY | constants.O_DIRECTORY;

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

export class OutsideRootsError extends Error {
  override name = "OutsideRootsError";
}

/**
 * Holds `dir`, reached from the root among `roots` it lies under (after resolving `..`), each component
 * below the root opened with O_NOFOLLOW and, with `create`, made when missing. A link at any component is
 * refused with an OutputLinkError naming the path up to it.
 */
export function holdFolderBeneath(dir: string, roots: string[], opts: { create?: boolean } = {}): HeldFolder {
  const target = path.resolve(dir);
  // A root as named or as the file system resolves it (a root under a linked /tmp, say): paths reach the
  // worker in either form.
  const named = roots.map((r) => path.resolve(r));
  const resolved = named.flatMap((r) => {
    try {
      return [realpathSync(r)];
    } catch {
      return [];
    }
  });
  const root = [...named, ...resolved].find((r) => inside(r, target));
  if (!root) throw new OutsideRootsError(`${dir}: outside the output root(s) ${roots.join(":")}`);
  let fd = openSync(root, FOLDER);
  let reached = root;
  try {
    for (const name of path
      .relative(root, target)
      .split(path.sep)
      .filter((c) => c !== "")) {
      reached = path.join(reached, name);
      const next = `/proc/self/fd/${fd}/${name}`;
      let child: number;
      try {
        child = openSync(next, FOLDER | constants.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ELOOP" || code === "ENOTDIR") throw new OutputLinkError(reached, { cause: err });
        if (code !== "ENOENT" || !opts.create) throw err;
        // mkdir never follows a link at its last component: one planted meanwhile makes it fail (EEXIST)
        mkdirSync(next, 0o755);
        child = openSync(next, FOLDER | constants.O_NOFOLLOW);
      }
      closeSync(fd);
      fd = child;
    }
    return HeldFolder.fromDescriptor(target, fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
