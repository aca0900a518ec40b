// A worker killed a moment before the coordinator frees its ring may still hold its NATS subscription: the
// server delivers the release to the dying connection and no reply ever comes. The release must still end
// within moments (the worker counted gone), never after the release's long timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { encodeCommandReply, jobSubjects } from "../../proto/mod.js";
import { Ring } from "../../coordinator/train/ring.js";
import { startNatsServer } from "../helpers/nats_server.js";

test("a release delivered to a worker that dies before answering ends at once, naming it gone", async () => {
  const server = await startNatsServer();
  const coordinator = await connect({ servers: server.url });
  const dying = await connect({ servers: server.url });
  const alive = await connect({ servers: server.url });
  try {
    // The dying worker takes the first release and vanishes without a reply, as a process killed mid-read.
    let taken = 0;
    dying.subscribe(jobSubjects.workerCommand("dying", "release"), {
      callback: () => {
        taken++;
        void dying.close();
      },
    });
    alive.subscribe(jobSubjects.workerCommand("alive", "release"), {
      callback: (_err, msg) => void msg.respond(encodeCommandReply("release", { ok: true })),
    });
    await Promise.all([dying.flush(), alive.flush()]);
    const ring = new Ring(coordinator, ["dying", "alive"], () => new Promise<never>(() => {}));
    const began = Date.now();
    const gone = await ring.release("job-1");
    const tookMs = Date.now() - began;
    assert.equal(taken, 1, "the dying worker got the release");
    assert.deepEqual(gone, ["dying"]);
    assert.ok(tookMs < 5000, `the release took ${tookMs} ms`);
  } finally {
    await Promise.all([coordinator.close(), alive.close(), dying.isClosed() ? undefined : dying.close()]);
    await server.stop();
  }
});
