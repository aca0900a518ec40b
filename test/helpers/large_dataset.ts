// Chat records in bulk for jobs whose data preparation must take a while (seconds of reading and
// tokenizing on any machine), written in well under a second.
import { createWriteStream } from "node:fs";
import { once } from "node:events";

/** `records` chat records of about 250 bytes each as JSONL in `file` (120,000 make about 30 MB). */
export async function largeDataset(file: string, records: number, first = 0): Promise<void> {
  const out = createWriteStream(file);
  const line = (i: number) =>
    JSON.stringify({
      messages: [
        { role: "user", content: `question ${i}: ${"lorem ipsum ".repeat(8)}` },
        { role: "assistant", content: `answer ${i}: ${"dolor sit amet ".repeat(8)}` },
      ],
    }) + "\n";
  for (let i = first; i < first + records; i++) if (!out.write(line(i))) await once(out, "drain");
  out.end();
  await once(out, "finish");
}
