// Every file a job writes into an output folder is created here, never through a symbolic link: a link
// planted at an output path (by anyone who can write into the folder) would otherwise let a job overwrite
// whatever the link points at, with the coordinator's or the worker's rights. Files are opened with
// O_NOFOLLOW (the last component may not be a link) and O_CREAT; temporary files also with O_EXCL, so a
// name planted in advance is never reused. A link found at an output path is refused with its name.
import { constants } from "node:fs";
import { lstat, mkdir, open, rm, type FileHandle } from "node:fs/promises";
import { renameDurably } from "./durable_fs.js";

/** An output path that is a symbolic link: refused, never followed or replaced. */
export class OutputLinkError extends Error {
  override name = "OutputLinkError";
  constructor(
    readonly file: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: is a symbolic link; outputs are never written through links`, options);
  }
}

const { O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, O_EXCL, O_NOFOLLOW } = constants;

const FLAGS = {
  /** replace the file's content */
  truncate: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
  /** add to the end */
  append: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW,
  /** a new file only: fails if anything (a link included) has the name */
  exclusive: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
} as const;

export type OutputMode = keyof typeof FLAGS;

/** Opens `file` for writing without following a link at it; ELOOP (a link) becomes an OutputLinkError. */
export async function openOutputFile(file: string, mode: OutputMode): Promise<FileHandle> {
  try {
    return await open(file, FLAGS[mode], 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ELOOP") throw new OutputLinkError(file, { cause: err });
    throw err;
  }
}

/** Replaces `file`'s content with `data`. */
export async function writeOutputFile(file: string, data: string | Uint8Array): Promise<void> {
  const fh = await openOutputFile(file, "truncate");
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** Appends `data` to `file`, creating it if needed. */
export async function appendOutputFile(file: string, data: string | Uint8Array): Promise<void> {
  const fh = await openOutputFile(file, "append");
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}

/** Refuses `file` when it is a symbolic link (rename would replace the link, but its presence is an attack). */
export async function refuseLink(file: string): Promise<void> {
  const st = await lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (st?.isSymbolicLink()) throw new OutputLinkError(file);
}

/**
 * Writes `file` through a new temporary file (exclusive, fsynced) renamed into place, so a reader never sees
 * half of it; the temporary file is removed on failure.
 */
export async function writeOutputFileAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  // A leftover of a crashed writer with the same pid (pid 1 in a container) is removed, a link included:
  // rm removes a link itself, never its target.
  await rm(tmp, { force: true });
  let created = false;
  try {
    const fh = await openOutputFile(tmp, "exclusive");
    created = true;
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await refuseLink(file);
    await renameDurably(tmp, file);
  } catch (err) {
    if (created) await rm(tmp, { force: true });
    throw err;
  }
}

/** Creates the output folder `dir` (and its parents); a link at `dir` itself is refused. */
export async function makeOutputDir(dir: string): Promise<void> {
  await refuseLink(dir);
  await mkdir(dir, { recursive: true });
}
