// Errors a serving request can meet, each with the HTTP status and the OpenAI error object it becomes:
// `{"error": {"message", "type", "param", "code"}}`. A request's error is answered to that request alone.

export type OpenAiErrorType =
  "invalid_request_error" | "authentication_error" | "permission_error" | "not_found_error" | "server_error";

export interface OpenAiErrorBody {
  error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null };
}

/** A request the server refuses or could not serve; `param` names the request field at fault. */
export class ServeError extends Error {
  override name = "ServeError";
  constructor(
    readonly status: number,
    readonly type: OpenAiErrorType,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function badRequest(message: string, param: string | null = null, code = "invalid_value"): ServeError {
  return new ServeError(400, "invalid_request_error", message, param, code);
}

export function unknownModel(model: string, served: readonly string[]): ServeError {
  return new ServeError(
    404,
    "not_found_error",
    `the model '${model}' does not exist; served here: ${served.join(", ")}`,
    "model",
    "model_not_found",
  );
}

/** Any error as the OpenAI error object, and its HTTP status (500 for what is not a ServeError). */
export function toOpenAiError(err: unknown): { status: number; body: OpenAiErrorBody } {
  if (err instanceof ServeError)
    return {
      status: err.status,
      body: { error: { message: err.message, type: err.type, param: err.param, code: err.code } },
    };
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: { message, type: "server_error", param: null, code: "internal_error" } } };
}
