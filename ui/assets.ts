// The web UI as the server serves it. Everything is in the module graph
// (the bundle and the stylesheet are text imports), so a compiled binary
// carries the UI with no files beside it. Every URL in what is served is
// relative, so the UI works under any HTTP prefix.
import bundle from "./dist/app.js" with { type: "text" };
import css from "./style.css" with { type: "text" };
import { ICON_SVG, renderIconPng } from "./icon.ts";

export interface UiAsset {
  body: string | Uint8Array;
  contentType: string;
  cacheControl: string;
  /** Further response headers (the pages' security policy). */
  headers?: Record<string, string>;
}

/** What a page may load and who may frame it: its own script and the
 * stylesheet inlined in it, requests and WebSockets to this node only, and
 * no framing (a page elsewhere must not dress up the camera prompt).
 * protobufjs builds its encoders and decoders with Function(), hence
 * 'unsafe-eval'; no script from anywhere but this node can run. */
const PAGE_HEADERS: Record<string, string> = {
  "content-security-policy": [
    "default-src 'self'",
    "script-src 'self' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "permissions-policy": "camera=(self), microphone=(self)",
};

const THEME_COLOR = "#0f172a";
/** Pages are tiny and must pick up a new bundle at once. */
const REVALIDATE = "no-cache";
/** The pages load the bundle by a URL that changes with its content. */
const FOREVER = "public, max-age=31536000, immutable";
const A_DAY = "public, max-age=86400";

const PAGE_TITLES = new Map([
  ["/sfu", "Call"],
  ["/status", "Status"],
  ["/servers", "Servers"],
  ["/login", "Sign in"],
]);

/** Whether the path is one of the pages (rather than a script or icon). */
export function isPage(path: string): boolean {
  return PAGE_TITLES.has(path);
}

/** The three PNG icons: size and whether the corners are rounded. */
const PNG_ICONS = new Map<string, { size: number; rounded: boolean }>([
  ["/icon-192.png", { size: 192, rounded: true }],
  ["/icon-512.png", { size: 512, rounded: true }],
  ["/apple-touch-icon.png", { size: 180, rounded: false }],
]);

/** Changes whenever the bundle does, so browsers may cache it forever. */
export const BUNDLE_VERSION = fnv1a(bundle).toString(36);

function shell(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="${THEME_COLOR}">
<title>${title} · Umbrella</title>
<link rel="icon" href="favicon.svg" type="image/svg+xml">
<link rel="apple-touch-icon" href="apple-touch-icon.png">
<link rel="manifest" href="manifest.webmanifest">
<style>
${css}</style>
<script type="module" src="app.js?v=${BUNDLE_VERSION}"></script>
</head>
<body>
<div id="app"><noscript>Umbrella needs JavaScript.</noscript></div>
</body>
</html>
`;
}

const MANIFEST = JSON.stringify(
  {
    name: "Umbrella",
    short_name: "Umbrella",
    description: "Video calls across sites through your own Umbrella server",
    start_url: "sfu",
    scope: "./",
    display: "standalone",
    background_color: THEME_COLOR,
    theme_color: THEME_COLOR,
    icons: [
      { src: "favicon.svg", sizes: "any", type: "image/svg+xml" },
      { src: "icon-192.png", sizes: "192x192", type: "image/png" },
      { src: "icon-512.png", sizes: "512x512", type: "image/png" },
    ],
  },
  null,
  2,
);

/** PNGs are drawn on first request only; most clients never ask. */
const renderedPngs = new Map<string, Uint8Array>();

/** The UI file for a request path with the HTTP prefix removed, or
 * undefined when the path is not part of the UI. */
export function uiAsset(path: string): UiAsset | undefined {
  const title = PAGE_TITLES.get(path);
  if (title !== undefined) {
    return {
      body: shell(title),
      contentType: "text/html; charset=utf-8",
      cacheControl: REVALIDATE,
      headers: PAGE_HEADERS,
    };
  }
  const png = PNG_ICONS.get(path);
  if (png !== undefined) {
    let body = renderedPngs.get(path);
    if (body === undefined) {
      body = renderIconPng(png.size, png.rounded);
      renderedPngs.set(path, body);
    }
    return { body, contentType: "image/png", cacheControl: A_DAY };
  }
  switch (path) {
    case "/app.js":
      return {
        body: bundle,
        contentType: "text/javascript; charset=utf-8",
        cacheControl: FOREVER,
      };
    case "/favicon.svg":
      return {
        body: ICON_SVG,
        contentType: "image/svg+xml",
        cacheControl: A_DAY,
      };
    case "/manifest.webmanifest":
      return {
        body: MANIFEST,
        contentType: "application/manifest+json",
        cacheControl: REVALIDATE,
      };
    default:
      return undefined;
  }
}

/** 32-bit FNV-1a over UTF-16 code units: a cheap content fingerprint. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  }
  return hash;
}
