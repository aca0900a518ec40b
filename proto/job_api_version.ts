// The public job API's version, separate from the internal wire protocol (version.ts): workers and the
// coordinator change their messages together, while job clients written in other languages live longer.
// A request without `v` is taken as the current version; a major version not in JOB_API_VERSIONS is refused.
export const JOB_API_VERSION = 1;
/** every major version this coordinator answers */
export const JOB_API_VERSIONS: readonly number[] = [JOB_API_VERSION];
