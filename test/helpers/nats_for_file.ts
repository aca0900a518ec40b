// One real nats-server and one client connection shared by a test file's tests: started before the first
// test, closed and stopped after the last.
import { after, before } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNatsServer, type NatsServer } from "./nats_server.js";

/** The server and connection, readable once the file's `before` hook has run (inside tests and hooks). */
export function natsForFile(): { readonly server: NatsServer; readonly nc: NatsConnection } {
  const nats = {} as { server: NatsServer; nc: NatsConnection };
  before(async () => {
    nats.server = await startNatsServer();
    nats.nc = await connect({ servers: nats.server.url });
  });
  after(async () => {
    await nats.nc.close();
    await nats.server.stop();
  });
  return nats;
}
