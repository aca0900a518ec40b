// One value read from a data file, with the line it starts on: what every reader (JSON, JSONL, text,
// parquet) hands the pipeline, parsed or not.
export interface RawRecord {
  line: number;
  value?: unknown;
  /** set instead of value when the text does not parse */
  error?: string;
}
