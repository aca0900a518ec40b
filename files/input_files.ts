// Every data file a job reads is opened here. A path checked at intake can change before it is read (a file
// replaced by a symbolic link, a folder swapped for one); so the check is made again on what was actually
// opened: the descriptor's own path (/proc/self/fd/N, what the kernel reached, links and all) must lie under
// the input roots, and it must be a regular file. A FIFO, a device or a socket is refused by type; the open
// itself never waits on one (O_NONBLOCK), so a FIFO named as a data file cannot hang preparation.
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  type Stats,
} from "node:fs";
import path from "node:path";

/** Set by the coordinator to its data and output roots (':'-separated); every thread it starts inherits it. */
export const INPUT_ROOTS_VARIABLE = "RINGTUNE_INPUT_ROOTS";

export class InputFileError extends Error {
  override name = "InputFileError";
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

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

function inputRoots(): string[] | undefined {
  const value = process.env[INPUT_ROOTS_VARIABLE];
  if (!value) return undefined;
  return value
    .split(":")
    .filter((r) => r !== "")
    .map((r) => {
      try {
        return realpathSync(r);
      } catch {
        return path.resolve(r);
      }
    });
}

/**
 * A descriptor for reading `file`: a regular file that, as opened, lies under the input roots (when the
 * process has them). The caller closes it.
 */
export function openInputSync(file: string): number {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const why = notRegular(fstatSync(fd));
    if (why) throw new InputFileError(`${file}: ${why}`);
    const roots = inputRoots();
    if (roots) {
      const opened = readlinkSync(`/proc/self/fd/${fd}`);
      if (!roots.some((r) => inside(r, opened)))
        throw new InputFileError(`${file}: leads out of the input roots (it changed after it was checked)`);
    }
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The whole of an input file, through openInputSync. */
export function readInputBytes(file: string): Buffer {
  const fd = openInputSync(file);
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The whole of an input file as UTF-8 text. */
export function readRegularFile(file: string): string {
  return readInputBytes(file).toString("utf8");
}
