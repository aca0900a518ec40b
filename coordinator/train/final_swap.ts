// final/ appears whole or not at all: the final outputs are written into final.saving/ beside it, and only
// when every one of them is complete is that folder renamed to final/. An earlier final/ (a resumed run's,
// a restarted job's) stays untouched until then, so a crash, a kill or a cancel mid-save never leaves a
// half-written model under the name servers and users read. rename(2) cannot replace a folder that has
// files, so the earlier one steps aside to final.replaced/ for the moment between the two renames; a crash
// in that moment leaves it there, whole, and the next save completes the exchange.
import { lstat, rename, rm } from "node:fs/promises";
import { renameDurably } from "../../files/durable_fs.js";
import { finalLayout, finalReplacedDir, finalStagingDir } from "../../proto/mod.js";

async function present(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Clears what an interrupted save left in `output` and returns the folder the new save writes into. */
export async function stageFinal(output: string): Promise<string> {
  const staged = finalStagingDir(output);
  // rm removes a link itself, never what it points at
  await rm(staged, { recursive: true, force: true });
  return staged;
}

/** Renames the complete final.saving/ of `output` to final/, in place of an earlier final/. */
export async function publishFinal(output: string): Promise<void> {
  const final = finalLayout(output).dir;
  const replaced = finalReplacedDir(output);
  if (await present(final)) {
    // a final.replaced/ beside a final/ is what a crash after a completed exchange left: the older of the two
    await rm(replaced, { recursive: true, force: true });
    await rename(final, replaced);
  }
  await renameDurably(finalStagingDir(output), final);
  await rm(replaced, { recursive: true, force: true });
}
