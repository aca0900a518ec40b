// Renames that survive a power cut: the rename itself lives in the parent folder's entries, which reach
// the disk only when that folder is synced; without it a checkpoint "renamed into place" can vanish.
import { open, rename } from "node:fs/promises";
import path from "node:path";

/** fsyncs a folder, so the entries created, renamed or removed in it are on disk. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** rename(2), then the destination's folder synced. */
export async function renameDurably(from: string, to: string): Promise<void> {
  await rename(from, to);
  await syncDir(path.dirname(to));
}
