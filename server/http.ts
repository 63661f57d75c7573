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
