// The Umbrella icon, drawn once as geometry and output both as SVG (the
// favicon) and as PNG (for home screens that want bitmaps), so the two can
// never drift apart. Runs on the server, not in the browser bundle.
import { deflateSync } from "node:zlib";

/** Everything is laid out on a 64 × 64 grid. */
const GRID = 64;
const CORNER = 14;
const BACKGROUND = "#2563eb";
const FOREGROUND = "#ffffff";
// The canopy: the top half of a circle, its lower edge cut by three arcs
// that meet the edge at thirds of the width.
const CANOPY_X = 32;
const CANOPY_Y = 32;
const CANOPY_R = 22;
const SCALLOP_HALF_WIDTH = CANOPY_R / 3;
const SCALLOP_DROP = 3;
const SCALLOP_R = Math.hypot(SCALLOP_HALF_WIDTH, SCALLOP_DROP);
const SCALLOP_CENTERS = [-2, 0, 2].map((k) =>
  CANOPY_X + k * SCALLOP_HALF_WIDTH
);
// The shaft and the hook at its foot, a stroke of constant width.
const STROKE = 3;
// The shaft starts inside the canopy, above the deepest scallop.
const SHAFT_TOP = 26;
const SHAFT_BOTTOM = 48;
const HOOK_R = 4;
const HOOK_X = CANOPY_X - HOOK_R;

function n(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

export const ICON_SVG = [
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${GRID} ${GRID}">`,
  `<rect width="${GRID}" height="${GRID}" rx="${CORNER}" fill="${BACKGROUND}"/>`,
  `<path fill="${FOREGROUND}" d="M${n(CANOPY_X - CANOPY_R)} ${CANOPY_Y}`,
  `A${CANOPY_R} ${CANOPY_R} 0 0 1 ${n(CANOPY_X + CANOPY_R)} ${CANOPY_Y}`,
  ...SCALLOP_CENTERS.toReversed().map((x) =>
    `A${n(SCALLOP_R)} ${n(SCALLOP_R)} 0 0 0 ${
      n(x - SCALLOP_HALF_WIDTH)
    } ${CANOPY_Y}`
  ),
  `Z"/>`,
  `<path fill="none" stroke="${FOREGROUND}" stroke-width="${STROKE}" `,
  `d="M${CANOPY_X} ${SHAFT_TOP}V${SHAFT_BOTTOM}`,
  `A${HOOK_R} ${HOOK_R} 0 0 1 ${HOOK_X - HOOK_R} ${SHAFT_BOTTOM}"/>`,
  `</svg>\n`,
].join("");

type Paint = "foreground" | "background" | "none";

/** What covers a point of the grid; `rounded` false fills the whole square
 * (iOS rounds home screen icons itself and blackens transparent corners). */
function paintAt(x: number, y: number, rounded: boolean): Paint {
  const inCanopy = y <= CANOPY_Y &&
    Math.hypot(x - CANOPY_X, y - CANOPY_Y) <= CANOPY_R &&
    SCALLOP_CENTERS.every((cx) =>
      Math.hypot(x - cx, y - (CANOPY_Y + SCALLOP_DROP)) > SCALLOP_R
    );
  const inShaft = Math.abs(x - CANOPY_X) <= STROKE / 2 && y >= SHAFT_TOP &&
    y <= SHAFT_BOTTOM;
  const hookDistance = Math.hypot(x - HOOK_X, y - SHAFT_BOTTOM);
  const inHook = y >= SHAFT_BOTTOM &&
    Math.abs(hookDistance - HOOK_R) <= STROKE / 2;
  if (inCanopy || inShaft || inHook) return "foreground";
  if (!rounded) return "background";
  const dx = Math.max(CORNER - x, x - (GRID - CORNER), 0);
  const dy = Math.max(CORNER - y, y - (GRID - CORNER), 0);
  return dx * dx + dy * dy <= CORNER * CORNER ? "background" : "none";
}

function rgb(hex: string): [number, number, number] {
  const value = parseInt(hex.slice(1), 16);
  return [value >> 16, (value >> 8) & 255, value & 255];
}

/** Renders the icon as an RGBA PNG of `size` × `size` pixels, 4 × 4
 * samples per pixel for smooth edges. Deterministic byte for byte. */
export function renderIconPng(size: number, rounded = true): Uint8Array {
  const samples = 4;
  const fg = rgb(FOREGROUND);
  const bg = rgb(BACKGROUND);
  const stride = size * 4 + 1;
  const raw = new Uint8Array(stride * size);
  // Each scanline starts with its filter type byte, left 0 (none).
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      let fgCount = 0;
      let bgCount = 0;
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const paint = paintAt(
            ((col + (sx + 0.5) / samples) * GRID) / size,
            ((row + (sy + 0.5) / samples) * GRID) / size,
            rounded,
          );
          if (paint === "foreground") fgCount++;
          else if (paint === "background") bgCount++;
        }
      }
      const covered = fgCount + bgCount;
      const at = row * stride + 1 + col * 4;
      for (let channel = 0; channel < 3; channel++) {
        raw[at + channel] = covered === 0 ? 0 : Math.round(
          (fg[channel] * fgCount + bg[channel] * bgCount) / covered,
        );
      }
      raw[at + 3] = Math.round((covered * 255) / (samples * samples));
    }
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, size);
  view.setUint32(4, size);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, index) => {
  let c = index;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
