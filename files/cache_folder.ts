// A data cache (tokenized examples, their index and rows, the manifest meta.json, stored reference
// log-probabilities) is read back by later jobs. Whoever can write into the cache folder could plant a link
// there and make the coordinator read through it a file outside its roots: train on it, or show part of it in
// an error. So the cache is reached as every input is: its folder by a walk from the roots that refuses links
// (files/walk_beneath.ts), its entries and their files opened relative to the held folder with O_NOFOLLOW, and
// each file checked to be a regular one (a FIFO would hang the read).
//
// ringtune makes no link in its cache (an entry is built in a new folder of its own and renamed into place
// whole), so a link found there was planted. It is refused by name, never followed nor quietly rebuilt over,
// as a link at an output path is: a rebuild would hide that someone wrote into the cache, and could not vouch
// for the entry's other files. The refusal says how to recover: remove the entry and the job builds it again.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import path from "node:path";
import { HeldFolder } from "./held_folder.js";
import { bothForms } from "./folder_beneath.js";
import { notRegular, openBeneath } from "./walk_beneath.js";

const FOLDER = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** Something in a data cache that ringtune never makes there: a symbolic link, a FIFO, a device. */
export class CacheEntryError extends Error {
  override name = "CacheEntryError";
}

function altered(file: string, what: string, entry: string, cause?: unknown): CacheEntryError {
  return new CacheEntryError(
    `${file}: ${what}; ringtune makes none in its data cache, so someone else changed this entry: ` +
      `remove ${entry} and the job builds it again`,
    { cause },
  );
}

/** Why the name `at` (that open refused) cannot be used, judged by lstat of the name itself. */
function refusal(at: string, shown: string, entry: string, err: unknown): Error {
  let st;
  try {
    st = lstatSync(at);
  } catch {
    return err as Error;
  }
  if (st.isSymbolicLink()) return altered(shown, "is a symbolic link", entry, err);
  return err as Error;
}

/**
 * The cache folder `dir`, held. With `roots` (the process's input roots) it is reached by a walk from the root
 * it lies under, made where missing, a link on the way refused. Without (the operator's own cache folder, or a
 * process that has no roots) it is made and opened as named.
 */
export function holdCacheFolder(dir: string, roots: string[] | undefined): HeldFolder {
  if (!roots) {
    mkdirSync(dir, { recursive: true });
    return HeldFolder.fromDescriptor(path.resolve(dir), openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY));
  }
  const fd = openBeneath(dir, bothForms(roots), { want: "folder", links: "refuse", create: true, label: "output" });
  return HeldFolder.fromDescriptor(path.resolve(dir), fd);
}

/** The entry `name` of the held cache folder, held; undefined when there is none. A link there is refused. */
export function holdCacheEntry(cache: HeldFolder, name: string): HeldFolder | undefined {
  const at = cache.path(name);
  const shown = path.join(cache.dir, name);
  try {
    return HeldFolder.fromDescriptor(shown, openSync(at, FOLDER));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw refusal(at, shown, shown, err);
  }
}

/**
 * A descriptor for reading the file `name` of the held entry, or undefined when there is none; a link, a FIFO,
 * a device or a socket there is refused by name. The caller closes it.
 */
export function openCacheFile(entry: HeldFolder, name: string): number | undefined {
  const at = entry.path(name);
  const shown = path.join(entry.dir, name);
  let fd: number;
  try {
    fd = openSync(at, FILE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ENXIO") throw altered(shown, "is a socket", entry.dir, err);
    throw refusal(at, shown, entry.dir, err);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw altered(shown, notRegular(st)!.replace(/; inputs must be regular files$/, ""), entry.dir);
  }
  return fd;
}

/** openCacheFile for a file the entry must hold. */
export function openCacheFileSync(entry: HeldFolder, name: string): number {
  const fd = openCacheFile(entry, name);
  if (fd === undefined)
    throw Object.assign(new Error(`${path.join(entry.dir, name)}: missing from the data cache entry`), {
      code: "ENOENT",
    });
  return fd;
}

/** The whole of the file `name` of the held entry (as openCacheFileSync opens it). */
export function readCacheFile(entry: HeldFolder, name: string): Buffer {
  const fd = openCacheFileSync(entry, name);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * An entry being built: a new folder beside where it goes (its name never used before, so nothing planted can
 * be in it), held while the files go in through `dir`, and renamed into place whole by `commit`.
 */
export class CacheBuild {
  private readonly tmpName: string;
  private readonly folder: HeldFolder;

  constructor(
    private readonly cache: HeldFolder,
    private readonly name: string,
  ) {
    this.tmpName = `${name}.tmp-${process.pid}-${Date.now()}`;
    // not recursive: anything already at that name (a link planted there) is an error, not a place to write into
    mkdirSync(cache.path(this.tmpName));
    this.folder = HeldFolder.fromDescriptor(
      path.join(cache.dir, this.tmpName),
      openSync(cache.path(this.tmpName), FOLDER),
    );
  }

  /** The folder the files are written in (reached through its descriptor, whatever its name points at). */
  get dir(): string {
    return this.folder.self;
  }

  /** `err` with the held folder's /proc path in its message replaced by the folder's name. */
  named(err: unknown): unknown {
    if (err instanceof Error) err.message = err.message.split(this.folder.path("")).join(this.folder.dir + "/");
    return err;
  }

  /** Replaces the entry (a link or an older entry at its name is removed, never followed) with this build. */
  commit(): void {
    this.folder.close();
    rmSync(this.cache.path(this.name), { recursive: true, force: true });
    renameSync(this.cache.path(this.tmpName), this.cache.path(this.name));
  }

  abort(): void {
    this.folder.close();
    rmSync(this.cache.path(this.tmpName), { recursive: true, force: true });
  }
}
