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

  /** A path to `name` inside the held folder, whatever its name points at now. */
  path(name: string): string {
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  close(): void {
    closeSync(this.fd);
  }
}
