// Small HTTP helpers the server's handlers share.

/** A JSON response; errors are `{ error: "plain words" }` (docs/api.md). */
export const json = (
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });

/** Whether a browser's Origin header names another site than the Host it
 * asked (a proxy in front passes Host on). No Origin: not a browser. */
export function crossSite(origin: string | null, host: string | null): boolean {
  if (origin === null) return false;
  try {
    return new URL(origin).host !== host;
  } catch {
    return true;
  }
}

/** 400 for a body that is not what it should be: `hint` shows what. */
export function notJsonLike(hint: string): Response {
  return json({ error: `the request body must be JSON like ${hint}` }, 400);
}

export type JsonBody =
  | { ok: true; value: unknown }
  | { ok: false; response: Response };

/** Reads a JSON request body of at most `maxBytes`, never holding more:
 * a larger one is answered 413 whatever it claims to be, one that does not
 * parse 400 with `hint` (what the body should look like). */
export async function readJsonBody(
  request: Request,
  maxBytes: number,
  hint: string,
): Promise<JsonBody> {
  const tooLarge = (): JsonBody => ({
    ok: false,
    response: json(
      { error: `the request body is over ${maxBytes} bytes` },
      413,
    ),
  });
  const notJson = (): JsonBody => ({ ok: false, response: notJsonLike(hint) });
  if (Number(request.headers.get("content-length")) > maxBytes) {
    await request.body?.cancel();
    return tooLarge();
  }
  const reader = request.body?.getReader();
  if (!reader) return notJson();
  const body = new Uint8Array(maxBytes);
  let length = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    if (length + value.byteLength > maxBytes) {
      await reader.cancel();
      return tooLarge();
    }
    body.set(value, length);
    length += value.byteLength;
  }
  try {
    return {
      ok: true,
      value: JSON.parse(new TextDecoder().decode(body.subarray(0, length))),
    };
  } catch {
    return notJson();
  }
}
