// What a probe must never change: every entry beneath a folder, apart from the roots a cluster may write in.
// A snapshot records each entry's type, size and modification time (lstat: a link is recorded, not followed),
// so a file created, removed, rewritten or retouched outside the roots shows in the comparison.
import assert from "node:assert/strict";
import { lstatSync, readdirSync } from "node:fs";
import path from "node:path";

export type TreeSnapshot = Map<string, string>;

/** Every entry beneath each of `folders` (themselves included), skipping `roots` and what lies beneath them. */
export function snapshotOutside(folders: string[], roots: string[]): TreeSnapshot {
  const skipped = new Set(roots.map((r) => path.resolve(r)));
  const seen: TreeSnapshot = new Map();
  const visit = (entry: string) => {
    if (skipped.has(entry)) return;
    const st = lstatSync(entry, { throwIfNoEntry: false });
    if (!st) return;
    const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : st.isFile() ? "file" : "other";
    seen.set(entry, `${kind} ${st.size} bytes, modified ${st.mtimeMs}`);
    if (st.isDirectory()) for (const name of readdirSync(entry)) visit(path.join(entry, name));
  };
  for (const folder of folders) visit(path.resolve(folder));
  return seen;
}

/** Fails naming every entry created, removed or changed since `before`. */
export function assertUntouched(before: TreeSnapshot, after: TreeSnapshot): void {
  const changes: string[] = [];
  for (const [entry, was] of before) {
    const now = after.get(entry);
    if (now === undefined) changes.push(`removed ${entry} (${was})`);
    else if (now !== was) changes.push(`changed ${entry}: ${was} -> ${now}`);
  }
  for (const [entry, now] of after) if (!before.has(entry)) changes.push(`created ${entry} (${now})`);
  assert.deepEqual(changes, [], `touched outside the cluster's roots:\n${changes.join("\n")}`);
}
