// An output folder reached from its root one component at a time, each opened relative to the one before and
// never through a symbolic link (files/walk_beneath.ts). What is held at the end is the folder the walk
// reached: a swap of any component afterwards (a parent renamed and replaced by a link to elsewhere) cannot
// redirect a write made through it.
import { realpathSync } from "node:fs";
import path from "node:path";
import { HeldFolder } from "./held_folder.js";
import { openBeneath, OutsideRootsError } from "./walk_beneath.js";

export { OutsideRootsError };

/** Roots as named and as the file system resolves them (a root under a linked /tmp): paths come in either form. */
export function bothForms(roots: string[]): string[] {
  const named = roots.map((r) => path.resolve(r));
  const resolved = named.flatMap((r) => {
    try {
      return [realpathSync(r)];
    } catch {
      return [];
    }
  });
  return [...new Set([...named, ...resolved])];
}

/**
 * Holds `dir`, reached from the root among `roots` it lies under (after resolving `..`), each component
 * below the root opened with O_NOFOLLOW and, with `create`, made when missing. A link at any component is
 * refused with an OutputLinkError naming the path up to it.
 */
export function holdFolderBeneath(dir: string, roots: string[], opts: { create?: boolean } = {}): HeldFolder {
  const fd = openBeneath(dir, bothForms(roots), {
    want: "folder",
    links: "refuse",
    create: opts.create,
    label: "output",
  });
  return HeldFolder.fromDescriptor(path.resolve(dir), fd);
}
