// `node dist/cli/summarize_job.js RESULT.json`: prints a finished job's summary from the record that
// `ringtune submit --wait --json` wrote (the last line of the file is used), for deploy/scripts/demo.sh.
import { readFileSync } from "node:fs";
import { formatJobSummary } from "./format_job_summary.js";

const file = process.argv[2];
if (!file) {
  console.error("usage: node dist/cli/summarize_job.js RESULT.json (the stdout of 'ringtune submit --wait --json')");
  process.exit(2);
}
const last = readFileSync(file, "utf8").trimEnd().split("\n").pop() ?? "";
try {
  console.log(formatJobSummary(JSON.parse(last)));
} catch (err) {
  console.error(`${file}: the last line is not a job record (${(err as Error).message})`);
  process.exit(1);
}
