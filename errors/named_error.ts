// The base of ringtune's error classes: one class per failure case, told apart by `instanceof` or by `name`
// (which is what a log line or a stack trace shows), with the cause kept.

/** An Error whose `name` is the name of the class it was made as, so a subclass needs no line to say it. */
export class NamedError extends Error {
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * An error about one thing a reader can find (a file, a message type): the message begins with it, and the
 * caller can read it back without parsing the message.
 */
export class ErrorAbout extends NamedError {
  constructor(
    readonly subject: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${subject}: ${detail}`, options);
  }
}
