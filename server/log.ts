// Structured, levelled logging to stderr: plain "key=value" text for an
// operator at a terminal, or one JSON object per line for log collectors.

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

let minimumRank = LOG_LEVELS.indexOf("info");
let format: LogFormat = "text";

export function setLogLevel(level: LogLevel): void {
  minimumRank = LOG_LEVELS.indexOf(level);
}

export function setLogFormat(newFormat: LogFormat): void {
  format = newFormat;
}

/** The message of anything thrown, on one line. */
export function errorMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ")
    .trim();
}

// Errors keep their useful text in a non-enumerable property and would
// otherwise serialise as "{}"; JSON has no bigint.
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  return typeof value === "bigint" ? value.toString() : value;
}

// Bare words stay unquoted so lines read naturally; anything that could be
// confused with the surrounding syntax is quoted with JSON escaping, which
// also keeps every entry on a single line.
function textValue(value: unknown): string {
  const plain = value instanceof Error ? value.message : value;
  if (typeof plain === "string") {
    return /^[^\s"=\\\p{Cc}]+$/u.test(plain) ? plain : JSON.stringify(plain);
  }
  if (typeof plain !== "object" || plain === null) return String(plain);
  return JSON.stringify(plain, jsonReplacer);
}

function formatLine(
  level: LogLevel,
  message: string,
  fields: LogFields,
): string {
  const time = new Date().toISOString();
  if (format === "json") {
    return JSON.stringify(
      { time, level, msg: message, ...fields },
      jsonReplacer,
    );
  }
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${
    message.replace(/\s*\n\s*/g, " ")
  }`;
  for (const [key, value] of Object.entries(fields)) {
    line += ` ${key}=${textValue(value)}`;
  }
  return line;
}

function makeLogger(baseFields: LogFields): Logger {
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (LOG_LEVELS.indexOf(level) < minimumRank) return;
    console.error(formatLine(level, message, { ...baseFields, ...fields }));
  };
  return {
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
    child: (fields) => makeLogger({ ...baseFields, ...fields }),
  };
}

export const log: Logger = makeLogger({});
