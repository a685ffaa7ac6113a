import { join } from "node:path";
import { writeFileAtomic } from "../../util/atomic-write.ts";
import type { Figure } from "../figure.ts";
import { figureToSvg } from "./figure-to-svg.ts";
import { svgToPng } from "./svg-to-png.ts";

export { writeFileAtomic };

/** Writes `DIR/NAME.svg` (and `DIR/NAME.png` at 2x with `png: true`); returns the paths written. */
export async function writeFigureFiles(
  dir: string,
  name: string,
  fig: Figure,
  opts: { png?: boolean; pngScale?: number } = {},
): Promise<string[]> {
  if (!/^[\w.-]+$/.test(name)) {
    throw new Error(
      `writeFigureFiles: name "${name}" must be a plain file name (letters, digits, . _ -), without a directory.`,
    );
  }
  const svg = await figureToSvg(fig);
  const svgPath = join(dir, `${name}.svg`);
  writeFileAtomic(svgPath, svg);
  const written = [svgPath];
  if (opts.png) {
    const pngPath = join(dir, `${name}.png`);
    writeFileAtomic(pngPath, svgToPng(svg, opts.pngScale ?? 2));
    written.push(pngPath);
  }
  return written;
}
