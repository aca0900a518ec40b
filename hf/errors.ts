// Errors for bad model files: one class per failure kind, each naming the file it is about, so a
// caller can tell "wrong shape" from "truncated file" without matching message text.
import { ErrorAbout } from "../errors/named_error.js";

/** Something in a model folder (config, weights, index, batch file) is not what it must be. */
export class ModelFormatError extends ErrorAbout {
  /** the file the error is about */
  get file(): string {
    return this.subject;
  }
}

/** config.json names an architecture the native core does not implement. */
export class UnknownArchitectureError extends ModelFormatError {}

/** config.json asks for a feature (RoPE scaling type, activation, sliding window) we do not implement. */
export class UnsupportedConfigError extends ModelFormatError {}

/** A parameter the model needs has no tensor in the weight files. */
export class MissingTensorError extends ModelFormatError {}

/** The weight files hold a tensor the model has no parameter for. */
export class UnexpectedTensorError extends ModelFormatError {}

/** A tensor's shape differs from its parameter's. */
export class ShapeMismatchError extends ModelFormatError {}

/** A tensor is stored in a dtype we cannot convert (only F32, BF16, F16 are read). */
export class UnsupportedDtypeError extends ModelFormatError {}

/** The file ends before the data its header describes. */
export class TruncatedFileError extends ModelFormatError {}

/** The header or a JSON file is malformed: bad JSON, bad offsets, overlapping tensors, bad fields. */
export class CorruptFileError extends ModelFormatError {}
