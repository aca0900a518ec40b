// A job's output folder held open for the whole run: files the coordinator writes there go through the
// descriptor (/proc/self/fd/N/NAME), so a folder renamed and replaced by a symbolic link mid-job cannot
// redirect them; they still land in the folder that was checked. The folder itself is opened with
// O_NOFOLLOW: a link already in its place is refused.
import { closeSync, constants, openSync } from "node:fs";
import { OutputLinkError } from "./output_files.js";

export class HeldFolder {
  private constructor(
    /** the folder as named */
    readonly dir: string,
    private readonly fd: number,
  ) {}

  static open(dir: string): HeldFolder {
    try {
      return new HeldFolder(dir, openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ELOOP" || code === "ENOTDIR") throw new OutputLinkError(dir, { cause: err });
      throw err;
    }
  }

  /** Holds the folder `fd` is open on (named `dir`); the HeldFolder closes it. */
  static fromDescriptor(dir: string, fd: number): HeldFolder {
    return new HeldFolder(dir, fd);
  }

  /** A path to `name` inside the held folder, whatever its name points at now. */
  path(name: string): string {
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  /**
   * The held folder itself as a path that writers can join names to: its own /proc/self/fd/N entry is a link
   * (which output writers refuse), its "." is the folder.
   */
  get self(): string {
    return `/proc/self/fd/${this.fd}/.`;
  }

  close(): void {
    closeSync(this.fd);
  }
}
