// Errors raised while decoding wire messages: one class per failure.
import { ErrorAbout, NamedError } from "../errors/named_error.js";

/** The peer speaks another protocol version; nothing in the message is trusted. */
export class ProtocolVersionError extends NamedError {
  constructor(
    readonly messageType: string,
    readonly expected: number,
    readonly actual: unknown,
  ) {
    super(
      `${messageType}: protocol version mismatch: this process speaks v${expected}, the peer sent ` +
        `${typeof actual === "number" ? `v${actual}` : `no version (${JSON.stringify(actual)})`}; ` +
        `run the same ringtune version on every node`,
    );
  }
}

/** The bytes are not msgpack, or the message does not match its schema (the message names the key). */
export class ProtocolDecodeError extends ErrorAbout {
  /** the message type the error is about */
  get messageType(): string {
    return this.subject;
  }
}
