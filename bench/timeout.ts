// A promise that must settle in time, for the bench's waits on other
// processes (signalling answers, tcpdump starting).

/** `promise`, or a rejection with `message()` (read when the time is up, so
 * it can say what had happened by then) if it takes more than `ms`. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  message: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
